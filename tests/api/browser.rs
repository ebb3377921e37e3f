//! A minimal browser for the `/api/auth` tests: keeps cookies (parsing `Set-Cookie`
//! itself, so tests can check its attributes), never follows redirects, and records
//! every response's headers and body so a test can search them.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::TestApp;

/// A response as a browser saw it.
pub struct Seen {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Seen {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("JSON body: {}", self.body))
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    pub fn location(&self) -> Option<String> {
        self.headers
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned())
    }
}

pub struct Browser {
    base: String,
    client: reqwest::Client,
    pub cookies: BTreeMap<String, String>,
    pub user_agent: String,
    /// Every response, in order (shared, so a test can hand it around).
    pub log: Arc<Mutex<Vec<Seen>>>,
}

impl Browser {
    pub fn new(app: &TestApp, user_agent: &str) -> Self {
        Self::at(&app.address, app.client.clone(), user_agent)
    }

    /// A browser for a server at `base` (e.g. one running as a child process).
    pub fn at(base: &str, client: reqwest::Client, user_agent: &str) -> Self {
        Self {
            base: base.to_owned(),
            client,
            cookies: BTreeMap::new(),
            user_agent: user_agent.to_owned(),
            log: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Body<'_>>,
        headers: &[(&str, &str)],
    ) -> Seen {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("user-agent", &self.user_agent);
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req = req.header("cookie", jar.join("; "));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req = match body {
            Some(Body::Json(v)) => req.json(v),
            Some(Body::Form(f)) => req.form(f),
            None => req,
        };
        let resp = req.send().await.unwrap();
        let seen = Seen {
            status: resp.status(),
            headers: resp.headers().clone(),
            body: resp.text().await.unwrap(),
        };
        for c in seen.set_cookies() {
            let pair = c.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || c.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let copy = Seen {
            status: seen.status,
            headers: seen.headers.clone(),
            body: seen.body.clone(),
        };
        self.log.lock().unwrap().push(copy);
        seen
    }

    pub async fn get(&mut self, path: &str) -> Seen {
        self.request(Method::GET, path, None, &[]).await
    }

    pub async fn csrf(&mut self) -> String {
        self.get("/api/auth/csrf").await.json()["csrfToken"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub async fn session(&mut self) -> Value {
        let seen = self.get("/api/auth/session").await;
        assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
        seen.json()
    }

    /// NextAuth's `signIn('credentials', {redirect: false, …})`: a form post with json=true.
    pub async fn sign_in(&mut self, username: &str, password: &str) -> Seen {
        let csrf = self.csrf().await;
        let form = [
            ("csrfToken", csrf.as_str()),
            ("username", username),
            ("password", password),
            ("callbackUrl", "/after"),
            ("json", "true"),
        ];
        self.request(
            Method::POST,
            "/api/auth/callback/credentials",
            Some(Body::Form(&form)),
            &[],
        )
        .await
    }

    pub async fn register(&mut self, username: &str, email: &str, password: &str) -> Seen {
        let csrf = self.csrf().await;
        let body = json!({"csrfToken": csrf, "username": username, "email": email, "password": password, "json": true});
        self.request(
            Method::POST,
            "/api/auth/register",
            Some(Body::Json(&body)),
            &[],
        )
        .await
    }

    pub async fn sign_out(&mut self, everywhere: bool) -> Seen {
        let csrf = self.csrf().await;
        let everywhere = if everywhere { "true" } else { "false" };
        let form = [
            ("csrfToken", csrf.as_str()),
            ("json", "true"),
            ("everywhere", everywhere),
        ];
        self.request(
            Method::POST,
            "/api/auth/signout",
            Some(Body::Form(&form)),
            &[],
        )
        .await
    }

    pub async fn sessions(&mut self) -> Seen {
        self.get("/api/auth/sessions").await
    }

    pub async fn revoke(&mut self, id: &str) -> Seen {
        let csrf = self.csrf().await;
        self.request(
            Method::DELETE,
            &format!("/api/auth/sessions/{id}"),
            None,
            &[("x-csrf-token", &csrf)],
        )
        .await
    }

    /// Posts a consent page's form (its hidden fields, its own token) with `decision`.
    pub async fn decide(&mut self, page: &str, decision: &str) -> Seen {
        self.submit(page, "/oauth/authorize", decision).await
    }

    /// Posts a page's form (its hidden fields, its own token) to `action` with
    /// `decision`.
    pub async fn submit(&mut self, page: &str, action: &str, decision: &str) -> Seen {
        let mut fields = form_fields(page);
        fields.push(("decision".into(), decision.into()));
        let pairs: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.request(Method::POST, action, Some(Body::Form(&pairs)), &[])
            .await
    }

    pub fn session_cookie(&self) -> Option<&String> {
        self.cookies
            .get("sessiongate")
            .or_else(|| self.cookies.get("__Host-sessiongate"))
    }
}

/// A page's hidden form fields, as a browser would post them.
pub fn form_fields(html: &str) -> Vec<(String, String)> {
    html.split("<input type=\"hidden\" ")
        .skip(1)
        .map(|chunk| {
            let attr = |name: &str| {
                let start = chunk.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
                let end = start + chunk[start..].find('"').unwrap();
                chunk[start..end]
                    .replace("&amp;", "&")
                    .replace("&quot;", "\"")
            };
            (attr("name"), attr("value"))
        })
        .collect()
}

pub enum Body<'a> {
    Json(&'a Value),
    Form(&'a [(&'a str, &'a str)]),
}
