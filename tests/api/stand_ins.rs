//! Local stand-ins for remote parties, speaking real HTTP on 127.0.0.1 and recording
//! what they receive.

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::{Data, Form, Json};
use poem::{get, handler, post, EndpointExt, IntoResponse, Request, Response, Route, Server};
use serde::Deserialize;
use serde_json::json;

/// One request a stand-in received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub content_type: String,
    pub authorization: Option<String>,
    pub body: String,
}

pub type Journal = Arc<Mutex<Vec<Received>>>;

/// A FastAPI-style credentials backend (as in seeds/authjs-fastapi-credentials.md):
/// `POST /api/v1/login/oauth` takes the OAuth2 password form and answers
/// `{access_token, token_type, id, name, email}` at the top level; `GET /api/v1/users/me`
/// answers the profile for a Bearer token; `POST /api/v1/logout` accepts anything.
pub struct FastApiBackend {
    pub base: String,
    pub journal: Journal,
}

pub const FASTAPI_PASSWORD: &str = "fastapi pass phrase 42";

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
}

async fn record(journal: &Journal, req: &Request, body: String) {
    journal.lock().unwrap().push(Received {
        path: req.uri().path().to_owned(),
        content_type: req.content_type().unwrap_or_default().to_owned(),
        authorization: req.header("authorization").map(str::to_owned),
        body,
    });
}

#[handler]
async fn fa_login(req: &Request, journal: Data<&Journal>, Form(form): Form<LoginForm>) -> Response {
    record(
        &journal,
        req,
        format!("username={}&password={}", form.username, form.password),
    )
    .await;
    if form.password == FASTAPI_PASSWORD {
        Json(json!({
            "access_token": format!("fa-access-{}", form.username),
            "token_type": "bearer",
            "id": 4242,
            "name": "Fast Ada",
            "email": "ada@fast.example"
        }))
        .into_response()
    } else {
        Json(json!({"detail": "Incorrect username or password"}))
            .with_status(poem::http::StatusCode::UNAUTHORIZED)
            .into_response()
    }
}

#[handler]
async fn fa_me(req: &Request, journal: Data<&Journal>) -> Response {
    record(&journal, req, String::new()).await;
    match req.header("authorization") {
        Some(a) if a.starts_with("Bearer fa-access-") => {
            Json(json!({"id": 4242, "name": "Fast Ada Renamed", "email": "ada@fast.example"}))
                .into_response()
        }
        _ => poem::http::StatusCode::UNAUTHORIZED.into_response(),
    }
}

#[handler]
async fn fa_logout(
    req: &Request,
    journal: Data<&Journal>,
    body: String,
) -> Json<serde_json::Value> {
    record(&journal, req, body).await;
    Json(json!({"message": "Logged out successfully."}))
}

impl FastApiBackend {
    pub async fn spawn() -> Self {
        let journal: Journal = Arc::default();
        let app = Route::new()
            .at("/api/v1/login/oauth", post(fa_login))
            .at("/api/v1/users/me", get(fa_me))
            .at("/api/v1/logout", post(fa_logout))
            .data(journal.clone());
        let base = crate::stand_ins::serve(app).await;
        Self { base, journal }
    }
}

/// An upstream API that echoes what reached it, plus a few misbehaviours on purpose.
pub struct EchoUpstream {
    pub base: String,
    pub journal: Journal,
}

#[handler]
async fn echo(req: &Request, journal: Data<&Journal>, body: poem::Body) -> Response {
    let path = req.uri().path().to_owned();
    let mut headers = serde_json::Map::new();
    for (k, v) in req.headers() {
        headers.insert(
            k.as_str().to_owned(),
            json!(v.to_str().unwrap_or("<binary>")),
        );
    }
    // Count the body without holding it.
    let mut stream = body.into_bytes_stream();
    let mut bytes = 0usize;
    use futures_util::StreamExt;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => bytes += c.len(),
            Err(_) => break,
        }
    }
    record(&journal, req, format!("{bytes}")).await;
    if let Some(n) = path.strip_prefix("/stream/") {
        let n: usize = n.parse().unwrap_or(0);
        const CHUNK: usize = 64 * 1024;
        let chunks = n / CHUNK;
        let s = futures_util::stream::iter(
            (0..chunks).map(|_| Ok::<_, std::io::Error>(vec![0u8; CHUNK])),
        );
        return poem::Body::from_bytes_stream(s).into_response();
    }
    if path == "/hang" {
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
    }
    if let Some(ms) = path.strip_prefix("/slow/") {
        let ms: u64 = ms.parse().unwrap_or(0);
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    if path == "/invalid-token" && req.header("authorization") == Some("Bearer at-1") {
        return Response::builder()
            .status(poem::http::StatusCode::UNAUTHORIZED)
            .header("www-authenticate", "Bearer error=\"invalid_token\"")
            .finish();
    }
    let answer = Json(json!({
        "method": req.method().as_str(),
        "path": path,
        "query": req.uri().query(),
        "headers": headers,
        "bytes": bytes,
    }))
    .into_response();
    let mut answer = answer;
    answer
        .headers_mut()
        .insert("set-cookie", "tracker=1; Path=/".parse().unwrap());
    answer
        .headers_mut()
        .insert("x-upstream", "yes".parse().unwrap());
    answer
}

impl EchoUpstream {
    pub async fn spawn() -> Self {
        let journal: Journal = Arc::default();
        let app = Route::new().at("/*path", echo).data(journal.clone());
        let base = crate::stand_ins::serve(app).await;
        Self { base, journal }
    }

    pub fn last(&self) -> Received {
        self.journal.lock().unwrap().last().cloned().unwrap()
    }
}

/// A token backend for refresh tests: `/login` gives `at-1`/`rt-1` expiring in
/// `login_expires_in` seconds; `/refresh` rotates (`at-N`, `rt-N`), counting calls,
/// refusing any refresh token but the latest (reuse), or failing on purpose.
pub struct TokenBackend {
    pub base: String,
    pub state: Arc<Mutex<TokenState>>,
}

#[derive(Default)]
pub struct TokenState {
    pub refreshes: usize,
    pub generation: usize,
    /// "ok", "reject" (400 invalid_grant) or "down" (503).
    pub mode: String,
    pub login_expires_in: i64,
}

#[derive(Deserialize)]
struct RefreshBody {
    refresh_token: String,
}

#[handler]
async fn tb_login(state: Data<&Arc<Mutex<TokenState>>>) -> Json<serde_json::Value> {
    let mut s = state.lock().unwrap();
    s.generation = 1;
    Json(
        json!({"access_token": "at-1", "refresh_token": "rt-1", "token_type": "bearer",
        "expires_in": s.login_expires_in, "user": {"id": "u-77", "username": "racer", "email": "racer@example.com",
            "email_verified": true, "groups": ["staff", "beta"], "roles": "reader"}}),
    )
}

#[handler]
async fn tb_refresh(
    state: Data<&Arc<Mutex<TokenState>>>,
    Json(body): Json<RefreshBody>,
) -> Response {
    // A little latency widens the window a racing second refresh would need.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let mut s = state.lock().unwrap();
    s.refreshes += 1;
    match s.mode.as_str() {
        "down" => return poem::http::StatusCode::SERVICE_UNAVAILABLE.into_response(),
        "reject" => {
            return Json(json!({"error": "invalid_grant"}))
                .with_status(poem::http::StatusCode::BAD_REQUEST)
                .into_response()
        }
        _ => {}
    }
    if body.refresh_token != format!("rt-{}", s.generation) {
        return Json(json!({"error": "invalid_grant", "reused": body.refresh_token}))
            .with_status(poem::http::StatusCode::BAD_REQUEST)
            .into_response();
    }
    s.generation += 1;
    let g = s.generation;
    Json(json!({"access_token": format!("at-{g}"), "refresh_token": format!("rt-{g}"), "expires_in": 3600})).into_response()
}

impl TokenBackend {
    pub async fn spawn(login_expires_in: i64) -> Self {
        let state = Arc::new(Mutex::new(TokenState {
            mode: "ok".into(),
            login_expires_in,
            ..Default::default()
        }));
        let app = Route::new()
            .at("/login", post(tb_login))
            .at("/refresh", post(tb_refresh))
            .data(state.clone());
        let base = crate::stand_ins::serve(app).await;
        Self { base, state }
    }

    pub fn set_mode(&self, mode: &str) {
        self.state.lock().unwrap().mode = mode.into();
    }

    pub fn refreshes(&self) -> usize {
        self.state.lock().unwrap().refreshes
    }
}

/// A TCP server that answers every connection with bytes that are not HTTP.
/// Serves `app` on a free loopback port; its base URL.
pub async fn serve(app: impl poem::Endpoint + 'static) -> String {
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
    tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
    format!("http://{addr}")
}

pub async fn spawn_garbage_upstream() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = sock.read(&mut buf).await;
            let _ = sock.write_all(b"this is not http at all\r\n\r\n").await;
        }
    });
    format!("http://{addr}")
}
