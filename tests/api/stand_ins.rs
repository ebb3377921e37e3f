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
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .unwrap();
        let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
        tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
        Self {
            base: format!("http://{addr}"),
            journal,
        }
    }
}
