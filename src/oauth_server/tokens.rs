//! The token endpoint's work (RFC 6749 §4.1.3, §5, §6; RFC 7636 §4.6; OIDC Core §3.1.3):
//! which grants a client may use, the code exchange, refresh-token rotation with reuse
//! detection, and minting access, refresh and id tokens.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::repo::{Claim, Client, Code, NewToken};
use super::{oauth_error, AuthorizationServer};
use crate::crypto::{constant_time_eq, random_token, sha256_hex};
use crate::error::AppResult;

/// The token endpoint's answer.
#[derive(Debug, Clone, poem_openapi::Object, serde::Serialize)]
pub struct TokenAnswer {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    #[oai(skip_serializing_if_is_none)]
    pub refresh_token: Option<String>,
    pub scope: String,
    /// With the `openid` scope: an ES256-signed OpenID Connect id_token.
    #[oai(skip_serializing_if_is_none)]
    pub id_token: Option<String>,
}

/// A token request's grant, as received (form or JSON).
#[derive(Debug, Default)]
pub struct TokenGrant<'a> {
    pub grant_type: Option<&'a str>,
    pub code: Option<&'a str>,
    pub redirect_uri: Option<&'a str>,
    pub code_verifier: Option<&'a str>,
    pub refresh_token: Option<&'a str>,
    pub scope: Option<&'a str>,
}

/// The one authentication context this server signs users in with (OIDC Core §2 `acr`).
pub const ACR_PASSWORD: &str = "urn:sessiongate:acr:password";

/// What a code exchange knows of the sign-in, for the id_token.
struct SignIn<'a> {
    nonce: Option<&'a str>,
    auth_time: i64,
    sid: Option<&'a str>,
}

/// OIDC Core §3.1.3.6: the left half of the access token's SHA-256 (both ES256 and
/// RS256 hash with SHA-256), base64url.
pub fn at_hash(access_token: &str) -> String {
    let digest = Sha256::digest(access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

impl AuthorizationServer {
    /// The token endpoint for an authenticated client: the grant's required parameters,
    /// whether the client may use it, then the code exchange or the refresh.
    pub async fn token(&self, client: &Client, grant: TokenGrant<'_>) -> AppResult<TokenAnswer> {
        let required = |v: Option<&str>, name: &str| {
            v.filter(|s| !s.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| oauth_error("invalid_request", format!("{name} is required.")))
        };
        let grant_type = required(grant.grant_type, "grant_type")?;
        if matches!(grant_type.as_str(), "authorization_code" | "refresh_token")
            && !client.allows_grant(&grant_type)
        {
            return Err(oauth_error(
                "unauthorized_client",
                "This client may not use this grant type.",
            ));
        }
        match grant_type.as_str() {
            "authorization_code" => {
                let code = required(grant.code, "code")?;
                self.exchange_code(client, &code, grant.redirect_uri, grant.code_verifier)
                    .await
            }
            "refresh_token" => {
                let refresh = required(grant.refresh_token, "refresh_token")?;
                self.refresh(client, &refresh, grant.scope).await
            }
            _ => Err(oauth_error(
                "unsupported_grant_type",
                "grant_type must be authorization_code or refresh_token.",
            )),
        }
    }

    /// `grant_type=authorization_code`.
    async fn exchange_code(
        &self,
        client: &Client,
        code: &str,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
    ) -> AppResult<TokenAnswer> {
        let bad = |why: &str| oauth_error("invalid_grant", why.to_owned());
        let grant_id = uuid::Uuid::new_v4().to_string();
        let stored = match self.repo.claim_code(&sha256_hex(code), &grant_id).await? {
            Claim::Fresh(stored) => {
                if let Err(e) = self.check_code(client, &stored, redirect_uri, verifier) {
                    // Spent, and its (empty) grant closed.
                    self.repo.revoke_grant(&grant_id).await?;
                    return Err(e);
                }
                stored
            }
            Claim::Reused(issued) => {
                // RFC 6749 §4.1.2: a code used twice revokes what it issued.
                tracing::warn!(client = %client.client_id, "authorization code reused; its tokens are revoked");
                self.repo.revoke_grant(&issued).await?;
                return Err(bad("The code has already been used."));
            }
            Claim::Unknown => return Err(bad("Unknown code.")),
        };
        let (answer, tokens) = self
            .mint(
                client,
                &stored.user_id,
                &stored.scope,
                Some(SignIn {
                    nonce: stored.nonce.as_deref(),
                    auth_time: stored.auth_time,
                    sid: stored.sid.as_deref(),
                }),
            )
            .await?;
        self.repo.add_tokens(&grant_id, &tokens).await?;
        Ok(answer)
    }

    /// RFC 6749 §4.1.3 and RFC 7636 §4.6: the code's client, lifetime, redirect URI and
    /// PKCE verifier.
    fn check_code(
        &self,
        client: &Client,
        stored: &Code,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
    ) -> AppResult<()> {
        let bad = |why: &str| oauth_error("invalid_grant", why.to_owned());
        if stored.client_id != client.client_id {
            return Err(bad("The code was issued to another client."));
        }
        if stored.expires_at <= self.clock.now() {
            return Err(bad("The code has expired."));
        }
        // Required when the authorization request had one, and then identical.
        let same_uri = match (stored.redirect_uri.as_str(), redirect_uri) {
            ("", None) => true,
            ("", Some(given)) => client.redirect_uris().any(|u| u == given),
            (sent, given) => given == Some(sent),
        };
        if !same_uri {
            return Err(bad("redirect_uri differs from the authorization request."));
        }
        match (&stored.challenge, verifier) {
            (Some(challenge), Some(v)) => {
                let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes()));
                if !constant_time_eq(computed.as_bytes(), challenge.as_bytes()) {
                    return Err(bad("The PKCE code_verifier does not match."));
                }
            }
            (Some(_), None) => return Err(bad("code_verifier is required.")),
            (None, Some(_)) => return Err(bad("No code_challenge was sent for this code.")),
            (None, None) => {}
        }
        Ok(())
    }

    /// `grant_type=refresh_token`: rotation, and reuse detection that revokes the grant.
    async fn refresh(
        &self,
        client: &Client,
        refresh_token: &str,
        scope: Option<&str>,
    ) -> AppResult<TokenAnswer> {
        let bad = |why: &str| oauth_error("invalid_grant", why.to_owned());
        let hash = sha256_hex(refresh_token);
        let Some(row) = self.repo.find_token(&hash).await? else {
            return Err(bad("Unknown refresh token."));
        };
        if row.kind != "refresh" || row.client_id != client.client_id {
            return Err(bad("Unknown refresh token."));
        }
        if row.spent_at.is_some() && row.grant_revoked_at.is_none() {
            tracing::warn!(client = %client.client_id, "spent refresh token presented again; grant revoked");
            self.repo.revoke_grant(&row.grant_id).await?;
            return Err(bad("The refresh token has already been used."));
        }
        if !row.live(self.clock.now()) {
            return Err(bad("The refresh token is expired or revoked."));
        }
        let scope = match scope
            .filter(|s| !s.trim().is_empty())
            .map(str::split_whitespace)
        {
            None => row.scope.clone(),
            Some(asked) => {
                let asked: Vec<&str> = asked.collect();
                if asked
                    .iter()
                    .any(|s| !row.scope.split_whitespace().any(|g| g == *s))
                {
                    return Err(oauth_error(
                        "invalid_scope",
                        "A refresh cannot widen the granted scope.",
                    ));
                }
                asked.join(" ")
            }
        };
        // id_tokens are for sign-in; a refresh answers tokens only.
        let (answer, tokens) = self.mint(client, &row.user_id, &scope, None).await?;
        if !self.repo.rotate(&hash, &row.grant_id, &tokens).await? {
            self.repo.revoke_grant(&row.grant_id).await?;
            return Err(bad("The refresh token has already been used."));
        }
        Ok(answer)
    }

    /// New access (+ refresh) tokens and, at sign-in with `openid`, an id_token; and
    /// what to store of them.
    async fn mint(
        &self,
        client: &Client,
        user_id: &str,
        scope: &str,
        sign_in: Option<SignIn<'_>>,
    ) -> AppResult<(TokenAnswer, Vec<NewToken>)> {
        let at = self.clock.now();
        let access_ttl = self.settings.oauth.access_token_ttl.as_secs() as i64;
        let refresh_ttl = self.settings.oauth.refresh_token_ttl.as_secs() as i64;
        let stored = |token: &str, kind, expires_at| NewToken {
            hash: sha256_hex(token),
            kind,
            scope: scope.to_owned(),
            expires_at,
        };
        let access = format!("sga_{}", random_token());
        let mut tokens = vec![stored(&access, "access", at + access_ttl)];
        let refresh = client.allows_grant("refresh_token").then(|| {
            let r = format!("sgr_{}", random_token());
            tokens.push(stored(&r, "refresh", at + refresh_ttl));
            r
        });
        let openid = scope.split_whitespace().any(|s| s == "openid");
        let id_token = match (openid, sign_in) {
            (true, Some(s)) => {
                // OIDC Core §2: iss, sub, aud, exp, iat; auth_time always (so `max_age`
                // can be checked); nonce as sent; at_hash (§3.1.3.6); the OP session's
                // sid (Back-Channel Logout §2.1).
                let mut claims = self.claims(user_id, scope).await?;
                claims["iss"] = json!(self.issuer());
                claims["aud"] = json!(client.client_id);
                claims["iat"] = json!(at);
                claims["exp"] = json!(at + access_ttl);
                claims["auth_time"] = json!(s.auth_time);
                claims["at_hash"] = json!(at_hash(&access));
                if let Some(n) = s.nonce {
                    claims["nonce"] = json!(n);
                }
                if let Some(sid) = s.sid {
                    claims["sid"] = json!(sid);
                }
                // §2 acr and RFC 8176 amr: how the user signed in here (a password; one
                // level only, so every request's `acr_values` gets the same answer).
                claims["acr"] = json!(ACR_PASSWORD);
                claims["amr"] = json!(["pwd"]);
                Some(self.keys().await?.sign(client.id_token_alg(), &claims)?)
            }
            _ => None,
        };
        Ok((
            TokenAnswer {
                access_token: access,
                token_type: "Bearer".into(),
                expires_in: access_ttl,
                refresh_token: refresh,
                scope: scope.to_owned(),
                id_token,
            },
            tokens,
        ))
    }

    /// What the scopes reveal about a user (`sub` always).
    pub(super) async fn claims(&self, user_id: &str, scope: &str) -> AppResult<Value> {
        let user = self
            .users
            .find_by_id(user_id)
            .await?
            .ok_or_else(|| oauth_error("invalid_grant", "The user no longer exists."))?;
        let has = |s: &str| scope.split_whitespace().any(|x| x == s);
        let mut claims = json!({ "sub": user.id });
        if has("profile") || has("user") {
            let full = format!("{} {}", user.first_name, user.last_name)
                .trim()
                .to_owned();
            claims["name"] = json!(if full.is_empty() {
                user.username.clone()
            } else {
                full
            });
            claims["preferred_username"] = json!(user.username);
            claims["given_name"] = json!(user.first_name);
            claims["family_name"] = json!(user.last_name);
            claims["updated_at"] = json!(user.updated_at);
        }
        if has("email") || has("user") {
            claims["email"] = json!(user.email);
        }
        Ok(claims)
    }
}
