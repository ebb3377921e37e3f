//! OpenID Connect: discovery (cached), the provider's JWKS (cached, re-fetched when an
//! id_token names a key it does not hold) and id_token validation — signature, `iss`,
//! `aud` (and `azp`), `exp`, `nonce`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

use super::config::check_endpoint;
use super::{Failure, ProviderHttp};

/// How long a discovery document or key set is trusted before it is fetched again.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);

/// After a failed fetch, how long a stale copy is used before trying again.
const RETRY_AFTER: Duration = Duration::from_secs(60);

/// The parts of `/.well-known/openid-configuration` sessiongate uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    pub jwks_uri: String,
    #[serde(default)]
    pub revocation_endpoint: Option<String>,
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// OpenID RP-Initiated Logout 1.0 §2.1.
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
}

/// Per-provider OIDC state: the cached discovery document and key set.
pub struct Oidc {
    issuer: String,
    /// Clock skew tolerated on `exp`, `nbf` and `iat` (`providers.<id>.leeway`).
    leeway: Duration,
    /// The document and when to fetch it again.
    discovery: Mutex<Option<(Instant, Arc<Discovery>)>>,
    /// The signing keys and when to fetch them again (sooner for an unknown `kid`).
    keys: Mutex<Option<(Instant, Arc<Vec<Jwk>>)>>,
    /// When an unknown `kid` may make us fetch the keys again: at most once a minute,
    /// so tokens with made-up `kid`s (anyone can post a logout token) cannot make the
    /// provider's JWKS the bottleneck of every sign-in.
    next_unknown_kid: Mutex<Option<Instant>>,
}

impl Oidc {
    pub fn new(issuer: &str, leeway: Duration) -> Self {
        Self {
            issuer: issuer.to_owned(),
            leeway,
            discovery: Mutex::new(None),
            keys: Mutex::new(None),
            next_unknown_kid: Mutex::new(None),
        }
    }

    /// The discovery document: cached for an hour; a stale copy is used while the
    /// provider cannot be reached.
    pub async fn discovery(&self, http: &ProviderHttp) -> Result<Arc<Discovery>, Failure> {
        let mut cached = self.discovery.lock().await;
        if let Some((next, doc)) = cached.as_ref() {
            if Instant::now() < *next {
                return Ok(Arc::clone(doc));
            }
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let fetched = http
            .fetch_json(&url, None)
            .await
            .and_then(|v| {
                serde_json::from_value::<Discovery>(v)
                    .map_err(|e| Failure::Garbage(format!("discovery document: {e}")))
            })
            .and_then(|doc| self.checked(doc));
        match (fetched, cached.take()) {
            (Ok(doc), _) => {
                let doc = Arc::new(doc);
                *cached = Some((Instant::now() + DISCOVERY_TTL, Arc::clone(&doc)));
                Ok(doc)
            }
            (Err(e), Some((_, stale))) => {
                tracing::warn!(issuer = %self.issuer, error = %e, "OIDC discovery failed; using the cached document for a minute");
                *cached = Some((Instant::now() + RETRY_AFTER, Arc::clone(&stale)));
                Ok(stale)
            }
            (Err(e), None) => Err(e),
        }
    }

    /// The document must name this issuer exactly (OIDC Discovery §4.3), and every
    /// endpoint must be https (plain http on loopback only).
    fn checked(&self, doc: Discovery) -> Result<Discovery, Failure> {
        if doc.issuer.trim_end_matches('/') != self.issuer.trim_end_matches('/') {
            return Err(Failure::Garbage(format!(
                "discovery names issuer `{}`, configured `{}`",
                doc.issuer, self.issuer
            )));
        }
        let optional = [
            &doc.userinfo_endpoint,
            &doc.revocation_endpoint,
            &doc.end_session_endpoint,
        ];
        for url in [
            Some(&doc.authorization_endpoint),
            Some(&doc.token_endpoint),
            Some(&doc.jwks_uri),
        ]
        .into_iter()
        .chain(optional.into_iter().map(Option::as_ref))
        .flatten()
        {
            check_endpoint(url).map_err(|e| Failure::Garbage(format!("discovery: {e}")))?;
        }
        Ok(doc)
    }

    /// The signing keys, fetched when absent or when `kid` is not among them.
    async fn keys_for(
        &self,
        http: &ProviderHttp,
        jwks_uri: &str,
        kid: Option<&str>,
    ) -> Result<Arc<Vec<Jwk>>, Failure> {
        let mut cached = self.keys.lock().await;
        if let Some((next, keys)) = cached.as_ref() {
            let known = match kid {
                Some(kid) => keys.iter().any(|k| k.common.key_id.as_deref() == Some(kid)),
                None => !keys.is_empty(),
            };
            if known && Instant::now() < *next {
                return Ok(Arc::clone(keys));
            }
            if !known && Instant::now() < *next {
                let mut gate = self.next_unknown_kid.lock().await;
                if gate.is_some_and(|at| Instant::now() < at) {
                    return Ok(Arc::clone(keys));
                }
                *gate = Some(Instant::now() + RETRY_AFTER);
            }
        }
        let set = match http.fetch_json(jwks_uri, None).await {
            Ok(set) => set,
            // Aged out but unreachable: the keys we hold still verify what they signed.
            Err(e) => match cached.as_mut() {
                Some((next, keys)) => {
                    tracing::warn!(error = %e, "JWKS fetch failed; using the cached keys for a minute");
                    *next = Instant::now() + RETRY_AFTER;
                    return Ok(Arc::clone(keys));
                }
                None => return Err(e),
            },
        };
        // Keys this library cannot use (encryption keys, unknown types) are skipped, not
        // fatal: real key sets mix them in.
        let keys: Vec<Jwk> = set
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| Failure::Garbage("JWKS without `keys`".into()))?
            .iter()
            .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
            .filter(|k| !matches!(k.common.public_key_use, Some(PublicKeyUse::Encryption)))
            .collect();
        let keys = Arc::new(keys);
        *cached = Some((Instant::now() + DISCOVERY_TTL, Arc::clone(&keys)));
        Ok(keys)
    }

    /// A JWT of this provider, for `client_id`: its signature against the provider's
    /// JWKS (asymmetric algorithms only), `iss`, `aud`, `exp` and `nbf` when present,
    /// the `required` claims, and an `iat` not in the future (beyond the leeway).
    pub async fn verified(
        &self,
        http: &ProviderHttp,
        discovery: &Discovery,
        token: &str,
        client_id: &str,
        required: &[&str],
    ) -> Result<Value, Failure> {
        let bad = |why: String| Failure::IdToken(why);
        let header = jsonwebtoken::decode_header(token).map_err(|e| bad(format!("header: {e}")))?;
        // Asymmetric signatures only: an HS* token would be "signed" with our own client
        // secret, and `none` is never accepted (the library has no such algorithm).
        let asymmetric = !matches!(
            header.alg,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
        );
        if !asymmetric {
            return Err(bad(format!("algorithm {:?} not accepted", header.alg)));
        }
        let keys = self
            .keys_for(http, &discovery.jwks_uri, header.kid.as_deref())
            .await?;
        let jwk = match header.kid.as_deref() {
            Some(kid) => keys
                .iter()
                .find(|k| k.common.key_id.as_deref() == Some(kid)),
            None if keys.len() == 1 => keys.first(),
            None => None,
        }
        .ok_or_else(|| {
            bad(format!(
                "no key `{}` in the JWKS",
                header.kid.unwrap_or_default()
            ))
        })?;
        if let Some(alg) = jwk.common.key_algorithm {
            if format!("{alg:?}") != format!("{:?}", header.alg) {
                return Err(bad(format!(
                    "token algorithm {:?} differs from the key's {alg:?}",
                    header.alg
                )));
            }
        }
        let key = DecodingKey::from_jwk(jwk).map_err(|e| bad(format!("key: {e}")))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&discovery.issuer]);
        validation.set_audience(&[client_id]);
        validation.set_required_spec_claims(required);
        validation.leeway = self.leeway.as_secs();
        // OIDC Core §3.1.3.7: a token not valid yet (`nbf`) is not valid.
        validation.validate_nbf = true;
        let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|e| bad(e.to_string()))?
            .claims;
        // OIDC Core §3.1.3.7 (10): an `iat` from the future (beyond the leeway) cannot be
        // right; and there must be one (the library does not check its presence).
        let Some(iat) = claims.get("iat").and_then(Value::as_i64) else {
            return Err(bad("no iat".into()));
        };
        if iat > crate::clock::now() + self.leeway.as_secs() as i64 {
            return Err(bad("iat is in the future".into()));
        }
        Ok(claims)
    }

    /// Validates an id_token and returns its claims.
    pub async fn validate(
        &self,
        http: &ProviderHttp,
        discovery: &Discovery,
        id_token: &str,
        client_id: &str,
        nonce: Option<&str>,
    ) -> Result<Value, Failure> {
        let bad = |why: String| Failure::IdToken(why);
        let claims = self
            .verified(
                http,
                discovery,
                id_token,
                client_id,
                &["exp", "iat", "iss", "aud", "sub"],
            )
            .await?;
        // Several audiences: the token must have been issued to us (`azp`).
        if let Some(azp) = claims.get("azp").and_then(Value::as_str) {
            if azp != client_id {
                return Err(bad("azp is another client".into()));
            }
        }
        let token_nonce = claims.get("nonce").and_then(Value::as_str);
        if let Some(expected) = nonce {
            if !token_nonce
                .is_some_and(|n| crate::crypto::constant_time_eq(n.as_bytes(), expected.as_bytes()))
            {
                return Err(bad("nonce does not match this sign-in".into()));
            }
        }
        if claims
            .get("sub")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(bad("no subject".into()));
        }
        Ok(claims)
    }
}
