//! A local identity provider speaking the real protocols over HTTP on 127.0.0.1: the 42
//! intranet's OAuth2 (`/oauth/authorize`, `/oauth/token`, `/v2/me`) and an OpenID
//! provider (discovery, JWKS, ES256-signed id_tokens, userinfo), with RFC 7009
//! revocation. It checks what a real one checks — client credentials, `redirect_uri`,
//! single-use codes, the PKCE verifier, rotating refresh tokens — and can misbehave on
//! request.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::{Data, Json, Query};
use poem::{get, handler, post, EndpointExt, IntoResponse, Request, Response, Route, Server};
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const CLIENT_ID: &str = "u-s4t2ud-standin";
pub const CLIENT_SECRET: &str = "s-s4t2ud-standin-secret";

/// What the token endpoint does with the next requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenMode {
    Normal,
    /// 503 with an HTML body.
    Down,
    /// 200 with something that is not a token answer.
    Garbage,
    /// GitHub's way of refusing a refresh token: 200 with an error body.
    RefusalIn200,
    /// 200 with 256 MiB of JSON whitespace, streamed; bytes sent in `huge_sent`.
    Huge,
}

/// How the next id_tokens are broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdTokenMode {
    Good,
    BadSignature,
    WrongAudience,
    Expired,
    WrongNonce,
    Missing,
    /// `nbf` ten minutes from now.
    NotYetValid,
    /// `iat` ten minutes from now.
    IssuedInTheFuture,
}

/// How the client must authenticate at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthRule {
    Any,
    Basic,
    Post,
}

struct Grant {
    redirect_uri: String,
    challenge: String,
    nonce: Option<String>,
    used: bool,
}

struct SigningKey {
    kid: String,
    pkcs8: Vec<u8>,
    jwk: Value,
}

impl SigningKey {
    fn generate() -> Self {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap()
            .as_ref()
            .to_vec();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng).unwrap();
        let point = pair.public_key().as_ref();
        let kid = format!("k-{}", uuid::Uuid::new_v4().simple());
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        });
        Self { kid, pkcs8, jwk }
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(
            &header,
            claims,
            &jsonwebtoken::EncodingKey::from_ec_der(&self.pkcs8),
        )
        .unwrap()
    }
}

/// Everything the stand-in knows and has seen. Tests read and change it directly.
pub struct IdpState {
    pub base: String,
    pub oidc: bool,
    pub token_mode: TokenMode,
    pub id_token_mode: IdTokenMode,
    pub client_auth: ClientAuthRule,
    pub deny: bool,
    pub profile_fails: bool,
    pub issue_refresh: bool,
    pub expires_in: i64,
    /// The user the next sign-in is for (42-shaped).
    pub user: Value,
    /// The OP session the next id_tokens name (`sid`).
    pub sid: String,
    codes: HashMap<String, Grant>,
    pub access: HashMap<String, Value>,
    /// Refresh token → still valid.
    pub refresh: HashMap<String, bool>,
    key: SigningKey,
    pub jwks_fetches: usize,
    pub discovery_fetches: usize,
    pub profile_fetches: usize,
    /// `(grant_type, client auth used, form)` of every token request.
    pub token_requests: Vec<(String, &'static str, HashMap<String, String>)>,
    /// `(token, token_type_hint)` of every revocation.
    pub revoked: Vec<(String, String)>,
    /// The query of every end-session request.
    pub end_sessions: Vec<HashMap<String, String>>,
    /// Bytes the `Huge` token answer produced before the client stopped reading.
    pub huge_sent: Arc<std::sync::atomic::AtomicUsize>,
}

pub type Shared = Arc<Mutex<IdpState>>;

/// A running stand-in.
pub struct StandInIdp {
    pub base: String,
    pub state: Shared,
}

pub fn user_42() -> Value {
    json!({
        "id": 90210,
        "email": "jdoe@student.42.fr",
        "login": "jdoe",
        "first_name": "Jane",
        "last_name": "Doe",
        "usual_full_name": "Jane Doe",
        "displayname": "Jane Doe",
        "image": {"link": "https://cdn.intra.42.fr/users/jdoe.jpg",
                  "versions": {"large": "https://cdn.intra.42.fr/users/large_jdoe.jpg"}},
        "staff?": false,
        "active?": true,
        "correction_point": 4,
        "cursus_users": [{"level": 7.42, "grade": "Member"}],
        "campus": [{"id": 1, "name": "Paris"}]
    })
}

fn form_of(body: &str) -> HashMap<String, String> {
    oauth2::url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

fn oauth_error(status: StatusCode, code: &str) -> Response {
    Json(json!({"error": code, "error_description": format!("stand-in: {code}")}))
        .with_status(status)
        .into_response()
}

fn decode_component(s: &str) -> String {
    oauth2::url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The client's credentials, from HTTP Basic (RFC 6749 §2.3.1, form-encoded) or the body.
fn client_of(
    req: &Request,
    form: &HashMap<String, String>,
) -> Option<(String, String, &'static str)> {
    if let Some(basic) = req
        .header("authorization")
        .and_then(|a| a.strip_prefix("Basic "))
    {
        let decoded = String::from_utf8(STANDARD.decode(basic).ok()?).ok()?;
        let (id, secret) = decoded.split_once(':')?;
        return Some((decode_component(id), decode_component(secret), "basic"));
    }
    Some((
        form.get("client_id")?.clone(),
        form.get("client_secret")?.clone(),
        "post",
    ))
}

#[handler]
fn authorize(Query(q): Query<HashMap<String, String>>, state: Data<&Shared>) -> Response {
    let mut s = state.lock().unwrap();
    let redirect_uri = q.get("redirect_uri").cloned().unwrap_or_default();
    if q.get("client_id").map(String::as_str) != Some(CLIENT_ID) || redirect_uri.is_empty() {
        return (StatusCode::BAD_REQUEST, "unknown client").into_response();
    }
    let st = q.get("state").cloned().unwrap_or_default();
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    if s.deny {
        return Response::builder()
            .status(StatusCode::FOUND)
            .header(
                "location",
                format!("{redirect_uri}{sep}error=access_denied&state={st}"),
            )
            .finish();
    }
    if q.get("response_type").map(String::as_str) != Some("code")
        || q.get("code_challenge_method").map(String::as_str) != Some("S256")
    {
        return (StatusCode::BAD_REQUEST, "code flow with PKCE S256 only").into_response();
    }
    let code = format!("code-{}", uuid::Uuid::new_v4().simple());
    s.codes.insert(
        code.clone(),
        Grant {
            redirect_uri: redirect_uri.clone(),
            challenge: q.get("code_challenge").cloned().unwrap_or_default(),
            nonce: q.get("nonce").cloned(),
            used: false,
        },
    );
    let iss = if s.oidc {
        format!(
            "&iss={}",
            oauth2::url::form_urlencoded::byte_serialize(s.base.as_bytes()).collect::<String>()
        )
    } else {
        String::new()
    };
    Response::builder()
        .status(StatusCode::FOUND)
        .header(
            "location",
            format!("{redirect_uri}{sep}code={code}&state={st}{iss}"),
        )
        .finish()
}

fn issue(s: &mut IdpState, nonce: Option<&str>) -> Value {
    let access = format!("at-{}", uuid::Uuid::new_v4().simple());
    s.access.insert(access.clone(), s.user.clone());
    let now = sessiongate::clock::now();
    let mut answer = json!({
        "access_token": access,
        "token_type": "bearer",
        "expires_in": s.expires_in,
        "scope": if s.oidc { "openid email profile" } else { "public" },
        "created_at": now,
    });
    if s.issue_refresh {
        let refresh = format!("rt-{}", uuid::Uuid::new_v4().simple());
        s.refresh.insert(refresh.clone(), true);
        answer["refresh_token"] = json!(refresh);
    }
    if s.oidc && s.id_token_mode != IdTokenMode::Missing {
        let mut claims = json!({
            "iss": s.base, "sub": s.user["id"].to_string(), "aud": CLIENT_ID,
            "iat": now, "exp": now + 300, "email": s.user["email"], "sid": s.sid,
        });
        if let Some(n) = nonce {
            claims["nonce"] = json!(n);
        }
        match s.id_token_mode {
            IdTokenMode::WrongAudience => claims["aud"] = json!("another-client"),
            IdTokenMode::Expired => {
                claims["iat"] = json!(now - 7200);
                claims["exp"] = json!(now - 3600);
            }
            IdTokenMode::WrongNonce => claims["nonce"] = json!("not-the-nonce"),
            IdTokenMode::NotYetValid => claims["nbf"] = json!(now + 600),
            IdTokenMode::IssuedInTheFuture => {
                claims["iat"] = json!(now + 600);
                claims["exp"] = json!(now + 900);
            }
            _ => {}
        }
        let token = if s.id_token_mode == IdTokenMode::BadSignature {
            let mut forged = SigningKey::generate();
            forged.kid = s.key.kid.clone();
            forged.sign(&claims)
        } else {
            s.key.sign(&claims)
        };
        answer["id_token"] = json!(token);
    }
    answer
}

#[handler]
fn token_endpoint(req: &Request, body: String, state: Data<&Shared>) -> Response {
    let mut s = state.lock().unwrap();
    let form = form_of(&body);
    let grant = form.get("grant_type").cloned().unwrap_or_default();
    let Some((id, secret, how)) = client_of(req, &form) else {
        s.token_requests.push((grant, "none", form));
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    };
    s.token_requests.push((grant.clone(), how, form.clone()));
    let wrong_method = matches!(
        (s.client_auth, how),
        (ClientAuthRule::Basic, "post") | (ClientAuthRule::Post, "basic")
    );
    if id != CLIENT_ID || secret != CLIENT_SECRET || wrong_method {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    match s.token_mode {
        TokenMode::Down => {
            return (StatusCode::SERVICE_UNAVAILABLE, "<html>maintenance</html>").into_response()
        }
        TokenMode::Garbage => {
            return Json(json!({"hello": "world"})).into_response();
        }
        TokenMode::RefusalIn200 => {
            return Json(json!({"error": "bad_refresh_token",
                               "error_description": "The refresh token passed is incorrect or expired."}))
            .into_response();
        }
        TokenMode::Huge => {
            let sent = Arc::clone(&s.huge_sent);
            let chunks = (0..4096).map(move |_| {
                sent.fetch_add(64 * 1024, std::sync::atomic::Ordering::Relaxed);
                Ok::<_, std::io::Error>(vec![b' '; 64 * 1024])
            });
            return Response::builder().content_type("application/json").body(
                poem::Body::from_bytes_stream(futures_util::stream::iter(chunks)),
            );
        }
        TokenMode::Normal => {}
    }
    match grant.as_str() {
        "authorization_code" => {
            let code = form.get("code").cloned().unwrap_or_default();
            let Some(g) = s.codes.get_mut(&code) else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            };
            let verifier = form.get("code_verifier").cloned().unwrap_or_default();
            let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            if g.used
                || form.get("redirect_uri") != Some(&g.redirect_uri)
                || challenge != g.challenge
            {
                g.used = true;
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            }
            g.used = true;
            let nonce = g.nonce.clone();
            Json(issue(&mut s, nonce.as_deref())).into_response()
        }
        "refresh_token" => {
            let presented = form.get("refresh_token").cloned().unwrap_or_default();
            if s.refresh.get(&presented) != Some(&true) {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            }
            // Rotation: the presented token is spent.
            s.refresh.insert(presented, false);
            let mut answer = issue(&mut s, None);
            if let Some(obj) = answer.as_object_mut() {
                obj.remove("id_token");
            }
            Json(answer).into_response()
        }
        _ => oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    }
}

fn bearer_user(req: &Request, s: &IdpState) -> Option<Value> {
    let token = req.header("authorization")?.strip_prefix("Bearer ")?;
    s.access.get(token).cloned()
}

#[handler]
fn me(req: &Request, state: Data<&Shared>) -> Response {
    let mut s = state.lock().unwrap();
    s.profile_fetches += 1;
    if s.profile_fails {
        return (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response();
    }
    match bearer_user(req, &s) {
        Some(user) => Json(user).into_response(),
        None => oauth_error(StatusCode::UNAUTHORIZED, "invalid_token"),
    }
}

#[handler]
fn userinfo(req: &Request, state: Data<&Shared>) -> Response {
    let mut s = state.lock().unwrap();
    s.profile_fetches += 1;
    if s.profile_fails {
        return (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response();
    }
    match bearer_user(req, &s) {
        Some(u) => Json(json!({
            "sub": u["id"].to_string(),
            "name": u["displayname"],
            "email": u["email"],
            "preferred_username": u["login"],
            "picture": u["image"]["link"],
        }))
        .into_response(),
        None => oauth_error(StatusCode::UNAUTHORIZED, "invalid_token"),
    }
}

#[handler]
fn revoke(req: &Request, body: String, state: Data<&Shared>) -> Response {
    let mut s = state.lock().unwrap();
    let form = form_of(&body);
    match client_of(req, &form) {
        Some((id, secret, _)) if id == CLIENT_ID && secret == CLIENT_SECRET => {}
        _ => return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client"),
    }
    let token = form.get("token").cloned().unwrap_or_default();
    s.refresh.insert(token.clone(), false);
    s.access.remove(&token);
    s.revoked.push((
        token,
        form.get("token_type_hint").cloned().unwrap_or_default(),
    ));
    StatusCode::OK.into_response()
}

#[handler]
fn discovery(state: Data<&Shared>) -> Json<Value> {
    let mut s = state.lock().unwrap();
    s.discovery_fetches += 1;
    let b = s.base.clone();
    Json(json!({
        "issuer": b,
        "authorization_endpoint": format!("{b}/oauth/authorize"),
        "token_endpoint": format!("{b}/oauth/token"),
        "userinfo_endpoint": format!("{b}/userinfo"),
        "jwks_uri": format!("{b}/jwks"),
        "revocation_endpoint": format!("{b}/oauth/revoke"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "end_session_endpoint": format!("{b}/logout"),
    }))
}

/// RP-Initiated Logout's end-session endpoint: records the request, then sends the
/// browser back to `post_logout_redirect_uri` with `state`.
#[handler]
fn end_session(state: Data<&Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut s = state.lock().unwrap();
    s.end_sessions.push(q.clone());
    let Some(back) = q.get("post_logout_redirect_uri") else {
        return StatusCode::OK.into_response();
    };
    let state = q.get("state").cloned().unwrap_or_default();
    let sep = if back.contains('?') { '&' } else { '?' };
    let encoded: String = url_encode(&state);
    Response::builder()
        .status(StatusCode::FOUND)
        .header("location", format!("{back}{sep}state={encoded}"))
        .finish()
}

fn url_encode(s: &str) -> String {
    oauth2::url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[handler]
fn jwks(state: Data<&Shared>) -> Json<Value> {
    let mut s = state.lock().unwrap();
    s.jwks_fetches += 1;
    // An encryption key a real provider might list too: it must be skipped, not fatal.
    Json(json!({"keys": [
        {"kty": "RSA", "use": "enc", "alg": "RSA-OAEP", "kid": "enc-1", "n": "AQAB", "e": "AQAB"},
        s.key.jwk.clone(),
    ]}))
}

impl StandInIdp {
    /// Starts the stand-in; `oidc` adds discovery and signed id_tokens.
    pub async fn spawn(oidc: bool) -> Self {
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .unwrap();
        let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
        let base = format!("http://{addr}");
        let state: Shared = Arc::new(Mutex::new(IdpState {
            base: base.clone(),
            oidc,
            token_mode: TokenMode::Normal,
            id_token_mode: IdTokenMode::Good,
            client_auth: ClientAuthRule::Any,
            deny: false,
            profile_fails: false,
            issue_refresh: true,
            expires_in: 7200,
            user: user_42(),
            sid: format!("op-{}", uuid::Uuid::new_v4().simple()),
            codes: HashMap::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            key: SigningKey::generate(),
            jwks_fetches: 0,
            discovery_fetches: 0,
            profile_fetches: 0,
            token_requests: Vec::new(),
            revoked: Vec::new(),
            end_sessions: Vec::new(),
            huge_sent: Arc::default(),
        }));
        let app = Route::new()
            .at("/oauth/authorize", get(authorize))
            .at("/oauth/token", post(token_endpoint))
            .at("/oauth/revoke", post(revoke))
            .at("/v2/me", get(me))
            .at("/userinfo", get(userinfo))
            .at("/.well-known/openid-configuration", get(discovery))
            .at("/jwks", get(jwks))
            .at("/logout", get(end_session))
            .data(state.clone());
        tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
        Self { base, state }
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut IdpState) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    /// A Back-Channel Logout 1.0 §2.4 logout token for the current user and OP
    /// session, after `edit` (to break it on purpose).
    pub fn logout_token(&self, edit: impl FnOnce(&mut Value)) -> String {
        self.with(|s| {
            let now = sessiongate::clock::now();
            let mut claims = json!({
                "iss": s.base, "aud": CLIENT_ID, "iat": now, "exp": now + 120,
                "jti": uuid::Uuid::new_v4().to_string(),
                "sub": s.user["id"].to_string(), "sid": s.sid,
                "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
            });
            edit(&mut claims);
            s.key.sign(&claims)
        })
    }

    /// The same, signed by a key the provider never published (under its `kid`).
    pub fn forged_logout_token(&self) -> String {
        let token = self.logout_token(|_| {});
        let claims: Value = {
            let payload = token.split('.').nth(1).unwrap();
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
        };
        let mut forged = SigningKey::generate();
        forged.kid = self.with(|s| s.key.kid.clone());
        forged.sign(&claims)
    }

    /// A new signing key (new `kid`): the relying party must fetch the JWKS again.
    pub fn rotate_key(&self) {
        self.with(|s| s.key = SigningKey::generate());
    }

    /// The provider's side of the redirect: the user approves (or denies) at once.
    /// Returns where the provider sends the browser back.
    pub async fn approve(&self, authorize_url: &str) -> String {
        let resp = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(authorize_url)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 302, "{}", resp.text().await.unwrap());
        resp.headers()["location"].to_str().unwrap().to_owned()
    }
}
