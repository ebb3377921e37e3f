//! `/api/auth`: the NextAuth-compatible browser API, against real Redis and the memory
//! store.

use redis::AsyncCommands;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sessiongate::crypto::Secret;
use sessiongate::session::{Keyring, SessionId, TokenSet};

use crate::browser::{Body, Browser};
use crate::helpers::{spawn_app_with, Backend, TestApp, TestUser, PUBLIC_URL, REDIS_URL};

#[derive(Clone, Copy, Debug)]
pub enum Store {
    Redis,
    Memory,
}

const PASSWORD: &str = "violet tractor umbrella 93";

async fn app_with(store: Store, key: &str) -> TestApp {
    let key = key.to_owned();
    spawn_app_with(Backend::Sqlite, move |s| {
        s.session.keys = vec![Secret::new(key)];
        if matches!(store, Store::Memory) {
            s.redis.url = Secret::new("");
        }
    })
    .await
}

async fn signed_up(app: &TestApp, agent: &str) -> (Browser, TestUser) {
    let user = app.create_user().await;
    let mut b = Browser::new(app, agent);
    let seen = b.sign_in(&user.username, &user.password).await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    (b, user)
}

async fn sign_in_session_list_sign_out(store: Store) {
    let app = app_with(store, &sessiongate::crypto::generate_key()).await;
    let user = app.create_user().await;
    let mut b = Browser::new(&app, "Browser A/1.0");
    assert_eq!(b.session().await, json!({}), "signed out is exactly {{}}");

    let seen = b.sign_in(&user.username, &user.password).await;
    assert_eq!(seen.status, StatusCode::OK);
    assert_eq!(seen.json(), json!({"url": format!("{PUBLIC_URL}/after")}));
    let cookie = seen
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("sessiongate="))
        .unwrap();
    assert!(
        cookie.contains("; Path=/; HttpOnly; SameSite=Lax"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "dev cookies are not Secure");
    assert_eq!(b.session_cookie().unwrap().len(), 43);

    let session = b.session().await;
    assert_eq!(session["user"]["id"], user.id.as_str());
    assert_eq!(session["user"]["email"], user.email.as_str());
    assert_eq!(session["user"]["name"], user.username.as_str());
    assert_eq!(session["provider"], "credentials");
    assert!(session["expires"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        session.as_object().unwrap().len(),
        3,
        "nothing else, never a token: {session}"
    );

    let list = b.sessions().await;
    assert_eq!(list.status, StatusCode::OK);
    let list = list.json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["current"], true);
    assert_eq!(list[0]["user_agent"], "Browser A/1.0");
    assert_eq!(list[0]["ip"], "127.0.0.1");

    let seen = b.sign_out(false).await;
    assert_eq!(seen.status, StatusCode::OK);
    assert!(seen
        .set_cookies()
        .iter()
        .any(|c| c.starts_with("sessiongate=;") && c.contains("Max-Age=0")));
    assert_eq!(b.session().await, json!({}));
    let list = b.sessions().await;
    assert_eq!(list.status, StatusCode::UNAUTHORIZED);
    assert_eq!(list.json()["error"], "unauthenticated");
}

async fn two_clients_and_everywhere(store: Store) {
    let app = app_with(store, &sessiongate::crypto::generate_key()).await;
    let (mut a, user) = signed_up(&app, "Laptop").await;
    let mut b = Browser::new(&app, "Phone");
    assert_eq!(
        b.sign_in(&user.username, &user.password).await.status,
        StatusCode::OK
    );
    let mut c = Browser::new(&app, "Tablet");
    assert_eq!(
        c.sign_in(&user.username, &user.password).await.status,
        StatusCode::OK
    );

    let list = a.sessions().await.json();
    assert_eq!(list.as_array().unwrap().len(), 3);
    let phone = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["user_agent"] == "Phone")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // A revokes the phone's session
    let seen = a.revoke(&phone).await;
    assert_eq!(seen.status, StatusCode::NO_CONTENT, "{}", seen.body);
    assert!(seen.set_cookies().is_empty(), "A keeps its own cookie");
    assert_eq!(b.session().await, json!({}));
    assert_eq!(a.sessions().await.json().as_array().unwrap().len(), 2);
    // revoking needs the CSRF header, and only the user's own live sessions
    let seen = a
        .request(
            Method::DELETE,
            &format!("/api/auth/sessions/{phone}"),
            None,
            &[],
        )
        .await;
    assert_eq!(seen.status, StatusCode::FORBIDDEN);
    assert_eq!(seen.json()["error"], "csrf");
    assert_eq!(a.revoke(&phone).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        a.revoke(&"0".repeat(64)).await.status,
        StatusCode::NOT_FOUND
    );
    let stranger_app_user = app.create_user().await;
    let mut d = Browser::new(&app, "Stranger");
    d.sign_in(&stranger_app_user.username, &stranger_app_user.password)
        .await;
    let tablet = a
        .sessions()
        .await
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["user_agent"] == "Tablet")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        d.revoke(&tablet).await.status,
        StatusCode::NOT_FOUND,
        "not D's session"
    );
    assert_eq!(c.session().await["user"]["id"], user.id.as_str());

    // C signs out everywhere: A and C are out, the stranger is not
    let seen = c.sign_out(true).await;
    assert_eq!(seen.status, StatusCode::OK);
    assert_eq!(a.session().await, json!({}));
    assert_eq!(c.session().await, json!({}));
    assert_eq!(
        d.session().await["user"]["id"],
        stranger_app_user.id.as_str()
    );
}

async fn register_then_signed_in(store: Store) {
    let app = app_with(store, &sessiongate::crypto::generate_key()).await;
    let mut b = Browser::new(&app, "New user");
    let (username, email, password) = TestUser::random();
    let seen = b.register(&username, &email, &password).await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    assert_eq!(b.session().await["user"]["email"], email.as_str());
    // a taken username is 409 with the envelope, and no session change
    let mut other = Browser::new(&app, "Other");
    let seen = other
        .register(&username.to_uppercase(), "fresh@example.com", &password)
        .await;
    assert_eq!(seen.status, StatusCode::CONFLICT);
    assert_eq!(seen.json()["error"], "conflict");
    let seen = other.register("ok_name", "bad email", "short").await;
    assert_eq!(seen.status, StatusCode::BAD_REQUEST);
    assert!(seen.json()["details"]["email"].is_array());
    assert_eq!(other.session().await, json!({}));
}

crate::both_stores!(
    sign_in_session_list_sign_out,
    two_clients_and_everywhere,
    register_then_signed_in
);

/// Decrypts a session's blob the way only a holder of the cookie *and* the keys can.
fn open_blob(key_b64: &str, cookie: &str, store_key: &str, blob: &[u8]) -> TokenSet {
    let ring = Keyring::new(&[sessiongate::crypto::decode_key(key_b64).unwrap()]).unwrap();
    let id = SessionId::parse(cookie).unwrap();
    let (version, sealed) = blob.split_at(8);
    let aad = [store_key.as_bytes(), version].concat();
    let plain = ring.open(b"session", id.as_bytes(), &aad, sealed).unwrap();
    let session = sessiongate::session::Session::decode(&plain).unwrap();
    session.tokens
}

async fn redis_conn() -> redis::aio::MultiplexedConnection {
    redis::Client::open(REDIS_URL)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// `{prefix}{h}sess:{handle}`, `h` the handle's first three hex digits (DESIGN's key
/// layout: the hash tag that keeps a session on its user's cluster slot).
fn store_key(app: &TestApp, cookie: &str) -> String {
    let handle = SessionId::parse(cookie).unwrap().handle();
    format!("{}{{{}}}sess:{handle}", app.redis_prefix, &handle[..3])
}

#[tokio::test]
async fn no_token_ever_leaves_the_server_and_redis_holds_no_plaintext() {
    let key = sessiongate::crypto::generate_key();
    let app = app_with(Store::Redis, &key).await;
    let mut b = Browser::new(&app, "Auditor");
    let (username, email, password) = TestUser::random();
    assert_eq!(
        b.register(&username, &email, &password).await.status,
        StatusCode::OK
    );
    b.session().await;
    b.sessions().await;
    let csrf = b.csrf().await;
    b.request(
        Method::POST,
        "/api/auth/session",
        Some(Body::Json(&json!({"csrfToken": csrf}))),
        &[],
    )
    .await;
    b.get("/api/auth/providers").await;
    assert_eq!(b.sign_in(&username, &password).await.status, StatusCode::OK);
    b.session().await;

    let cookie = b.session_cookie().unwrap().clone();
    let skey = store_key(&app, &cookie);
    let blob: Vec<u8> = redis_conn().await.get(&skey).await.unwrap();
    assert!(!blob.is_empty());
    let tokens = open_blob(&key, &cookie, &skey, &blob);
    let refresh = tokens.refresh_token.clone().unwrap();
    assert!(tokens.access_token.len() > 100 && refresh.len() > 100);

    // Redis holds neither token nor the email, and no key name holds the user id
    let raw = String::from_utf8_lossy(&blob);
    for secret in [
        tokens.access_token.as_str(),
        refresh.as_str(),
        email.as_str(),
    ] {
        assert!(!raw.contains(secret));
    }
    assert!(!skey.contains(&cookie));

    b.sign_out(false).await;
    // sign-out revoked the vaulted refresh token at the backend, too
    assert_eq!(
        app.refresh(&refresh).await.status(),
        StatusCode::UNAUTHORIZED
    );
    for seen in b.log.lock().unwrap().iter() {
        let headers = format!("{:?}", seen.headers);
        for secret in [tokens.access_token.as_str(), refresh.as_str()] {
            assert!(
                !seen.body.contains(secret),
                "a body leaked a token: {}",
                seen.body
            );
            assert!(!headers.contains(secret), "a header leaked a token");
        }
    }
}

#[tokio::test]
async fn swapped_blobs_open_for_nobody() {
    let app = app_with(Store::Redis, &sessiongate::crypto::generate_key()).await;
    let (mut a, _) = signed_up(&app, "A").await;
    let (mut b, _) = signed_up(&app, "B").await;
    let (ka, kb) = (
        store_key(&app, a.session_cookie().unwrap()),
        store_key(&app, b.session_cookie().unwrap()),
    );
    let mut conn = redis_conn().await;
    let (va, vb): (Vec<u8>, Vec<u8>) = (conn.get(&ka).await.unwrap(), conn.get(&kb).await.unwrap());
    let () = conn.set(&ka, &vb).await.unwrap();
    let () = conn.set(&kb, &va).await.unwrap();
    for browser in [&mut a, &mut b] {
        let seen = browser.get("/api/auth/session").await;
        assert_eq!(seen.status, StatusCode::OK);
        assert_eq!(seen.json(), json!({}));
        assert!(
            seen.set_cookies().iter().any(|c| c.contains("Max-Age=0")),
            "the stale cookie is cleared"
        );
    }
    let exists: bool = conn.exists(&ka).await.unwrap();
    assert!(!exists, "the bad blob was deleted");
}

#[tokio::test]
async fn keys_rotate_without_signing_anyone_out() {
    let (key_a, key_b) = (
        sessiongate::crypto::generate_key(),
        sessiongate::crypto::generate_key(),
    );
    let first = app_with(Store::Redis, &key_a).await;
    let prefix = first.redis_prefix.clone();
    let (mut s1, user) = signed_up(&first, "S1").await;
    let mut s2 = Browser::new(&first, "S2");
    s2.sign_in(&user.username, &user.password).await;

    let restart = |keys: Vec<String>| {
        let prefix = prefix.clone();
        spawn_app_with(Backend::Sqlite, move |s| {
            s.session.keys = keys.into_iter().map(Secret::new).collect();
            s.redis.prefix = prefix;
        })
    };
    let kid = |k: &str| -> Vec<u8> {
        use sha2::Digest;
        sha2::Sha256::digest(sessiongate::crypto::decode_key(k).unwrap())[..4].to_vec()
    };
    let mut conn = redis_conn().await;

    // [B, A]: old sessions still read, and are re-sealed under B
    let rotated = restart(vec![key_b.clone(), key_a.clone()]).await;
    let mut s1r = Browser::new(&rotated, "S1");
    s1r.cookies = s1.cookies.clone();
    assert_eq!(s1r.session().await["user"]["id"], user.id.as_str());
    let blob: Vec<u8> = conn
        .get(store_key(&rotated, s1r.session_cookie().unwrap()))
        .await
        .unwrap();
    assert_eq!(&blob[8..12], kid(&key_b).as_slice(), "new writes use B");
    let mut fresh = Browser::new(&rotated, "S3");
    let other = rotated.create_user().await; // each test app has its own users database
    fresh.sign_in(&other.username, &other.password).await;
    let blob: Vec<u8> = conn
        .get(store_key(&rotated, fresh.session_cookie().unwrap()))
        .await
        .unwrap();
    assert_eq!(&blob[8..12], kid(&key_b).as_slice());

    // [B] alone: the session never read under [B, A] (still sealed with A) is signed
    // out cleanly; the migrated ones live on
    let retired = restart(vec![key_b.clone()]).await;
    let mut s2r = Browser::new(&retired, "S2");
    s2r.cookies = s2.cookies.clone();
    assert_eq!(s2r.session().await, json!({}));
    let mut s1rr = Browser::new(&retired, "S1");
    s1rr.cookies = s1r.cookies.clone();
    assert_eq!(s1rr.session().await["user"]["id"], user.id.as_str());
    s1.cookies.clear();
}

#[tokio::test]
async fn csrf_is_required_on_every_post() {
    let app = app_with(Store::Redis, &sessiongate::crypto::generate_key()).await;
    let (mut b, user) = signed_up(&app, "B").await;
    let wrong = "0".repeat(64);
    for token in [None, Some(wrong.as_str())] {
        let mut form = vec![
            ("username", user.username.as_str()),
            ("password", user.password.as_str()),
            ("json", "true"),
        ];
        if let Some(t) = token {
            form.push(("csrfToken", t));
        }
        let seen = b
            .request(
                Method::POST,
                "/api/auth/callback/credentials",
                Some(Body::Form(&form)),
                &[],
            )
            .await;
        assert_eq!(seen.status, StatusCode::FORBIDDEN);
        assert_eq!(seen.json()["error"], "csrf");
        let seen = b
            .request(
                Method::POST,
                "/api/auth/signout",
                Some(Body::Form(&form)),
                &[],
            )
            .await;
        assert_eq!(seen.status, StatusCode::FORBIDDEN);
        let seen = b
            .request(
                Method::POST,
                "/api/auth/session",
                Some(Body::Json(&json!({"csrfToken": token}))),
                &[],
            )
            .await;
        assert_eq!(seen.status, StatusCode::FORBIDDEN);
        let seen = b.request(Method::POST, "/api/auth/register", Some(Body::Json(&json!({"csrfToken": token, "username": "x_y_z", "email": "x@example.com", "password": PASSWORD}))), &[]).await;
        assert_eq!(seen.status, StatusCode::FORBIDDEN);
    }
    // a token from another browser's cookie does not match this browser's cookie
    let mut other = Browser::new(&app, "Other");
    let foreign = other.csrf().await;
    let form = [("csrfToken", foreign.as_str()), ("json", "true")];
    let seen = b
        .request(
            Method::POST,
            "/api/auth/signout",
            Some(Body::Form(&form)),
            &[],
        )
        .await;
    assert_eq!(seen.status, StatusCode::FORBIDDEN);
    // none of it signed anyone out
    assert_eq!(b.session().await["user"]["id"], user.id.as_str());
}

#[tokio::test]
async fn bad_cookies_are_signed_out_not_errors() {
    let app = app_with(Store::Redis, &sessiongate::crypto::generate_key()).await;
    let (b, _) = signed_up(&app, "B").await;
    let real = b.session_cookie().unwrap().clone();
    let mut forged = real.clone();
    forged.replace_range(0..1, if &real[0..1] == "A" { "B" } else { "A" });
    let deleted = {
        let (mut gone, _) = signed_up(&app, "Gone").await;
        let c = gone.session_cookie().unwrap().clone();
        gone.sign_out(false).await;
        c
    };
    for value in [
        "garbage",
        &"A".repeat(5000),
        &forged,
        &deleted,
        "",
        "%00%0d%0a",
    ] {
        let mut x = Browser::new(&app, "X");
        x.cookies.insert("sessiongate".into(), value.to_owned());
        let seen = x.get("/api/auth/session").await;
        assert_eq!(seen.status, StatusCode::OK, "{value}");
        assert_eq!(seen.json(), json!({}));
        assert_eq!(x.sessions().await.status, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn callback_urls_are_checked() {
    let app = app_with(Store::Redis, &sessiongate::crypto::generate_key()).await;
    let user = app.create_user().await;
    for (target, expected) in [
        ("https://evil.example/steal", "/"),
        ("//evil.example", "/"),
        ("javascript:alert(document.cookie)", "/"),
        ("/dashboard?tab=1", "/dashboard?tab=1"),
    ] {
        let mut b = Browser::new(&app, "B");
        let csrf = b.csrf().await;
        let form = [
            ("csrfToken", csrf.as_str()),
            ("username", &user.username),
            ("password", &user.password),
            ("callbackUrl", target),
        ];
        let seen = b
            .request(
                Method::POST,
                "/api/auth/callback/credentials",
                Some(Body::Form(&form)),
                &[],
            )
            .await;
        assert_eq!(seen.status, StatusCode::FOUND);
        assert_eq!(
            seen.location().unwrap(),
            format!("{PUBLIC_URL}{expected}"),
            "{target}"
        );
    }
    // a failed form sign-in redirects to NextAuth's error page
    let mut b = Browser::new(&app, "B");
    let csrf = b.csrf().await;
    let form = [
        ("csrfToken", csrf.as_str()),
        ("username", &user.username),
        ("password", "wrong"),
    ];
    let seen = b
        .request(
            Method::POST,
            "/api/auth/callback/credentials",
            Some(Body::Form(&form)),
            &[],
        )
        .await;
    assert_eq!(seen.status, StatusCode::FOUND);
    assert_eq!(
        seen.location().unwrap(),
        format!("{PUBLIC_URL}/api/auth/error?error=CredentialsSignin&provider=credentials")
    );
    // and with json=true answers 401 with that url
    let seen = b.sign_in(&user.username, "wrong").await;
    assert_eq!(seen.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        seen.json()["url"],
        format!("{PUBLIC_URL}/api/auth/error?error=CredentialsSignin&provider=credentials")
    );
    assert!(b.session_cookie().is_none());
}

#[tokio::test]
async fn a_new_id_at_every_sign_in() {
    let app = app_with(Store::Redis, &sessiongate::crypto::generate_key()).await;
    let (mut b, user) = signed_up(&app, "B").await;
    let first = b.session_cookie().unwrap().clone();
    b.sign_in(&user.username, &user.password).await;
    let second = b.session_cookie().unwrap().clone();
    assert_ne!(first, second);
    let mut old = Browser::new(&app, "Old");
    old.cookies.insert("sessiongate".into(), first);
    assert_eq!(
        old.session().await,
        json!({}),
        "the previous session of this browser ended"
    );
    assert_eq!(b.sessions().await.json().as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn secure_mode_uses_host_prefixed_secure_cookies() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.session.cookie_secure = true;
        s.session.keys = vec![Secret::new(sessiongate::crypto::generate_key())];
    })
    .await;
    let user = app.create_user().await;
    let mut b = Browser::new(&app, "B");
    let csrf_seen = b.get("/api/auth/csrf").await;
    assert!(csrf_seen.set_cookies()[0].starts_with("__Host-sessiongate.csrf-token="));
    let seen = b.sign_in(&user.username, &user.password).await;
    let cookie = seen
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("__Host-sessiongate="))
        .unwrap();
    assert!(
        cookie.contains("; Path=/; HttpOnly; SameSite=Lax; Secure"),
        "{cookie}"
    );
    assert!(!cookie.contains("Domain"));
    assert_eq!(b.session().await["user"]["id"], user.id.as_str());
}

#[tokio::test]
async fn redis_down_is_a_503_not_a_500() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = spawn_app_with(Backend::Sqlite, move |s| {
        s.redis.url = Secret::new(format!("redis://127.0.0.1:{port}/"));
        s.redis.timeout = std::time::Duration::from_millis(300);
        s.session.keys = vec![Secret::new(sessiongate::crypto::generate_key())];
    })
    .await;
    let mut b = Browser::new(&app, "B");
    b.cookies
        .insert("sessiongate".into(), SessionId::generate().encode());
    let seen = b.get("/api/auth/session").await;
    assert_eq!(seen.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(seen.json()["error"], "session_store_unavailable");
    assert_eq!(
        app.get("/readyz").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn providers_and_pages() {
    let app = app_with(Store::Memory, &sessiongate::crypto::generate_key()).await;
    let providers: Value = app.get("/api/auth/providers").await.json().await.unwrap();
    assert_eq!(
        providers["credentials"],
        json!({
            "id": "credentials", "name": "Username and password", "type": "credentials",
            "signinUrl": format!("{PUBLIC_URL}/api/auth/signin/credentials"),
            "callbackUrl": format!("{PUBLIC_URL}/api/auth/callback/credentials"),
        })
    );
    let page = app.get("/api/auth/signin?callbackUrl=%2Fhome").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers().get("set-cookie").is_some(),
        "the page sets the CSRF cookie it embeds"
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("name=\"csrfToken\"") && html.contains("/api/auth/callback/credentials"));
    let err = app
        .get("/api/auth/error?error=CredentialsSignin")
        .await
        .text()
        .await
        .unwrap();
    assert!(err.contains("The username or password is not right"));
    let xss = app
        .get("/api/auth/signin?error=%3Cscript%3E")
        .await
        .text()
        .await
        .unwrap();
    assert!(!xss.contains("<script>"));
    let log = app
        .post_json("/api/auth/_log", &json!({"level": "error", "message": "x"}))
        .await;
    assert_eq!(log.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_fastapi_style_backend_signs_in() {
    use crate::stand_ins::{FastApiBackend, FASTAPI_PASSWORD};
    let backend = FastApiBackend::spawn().await;
    let base = backend.base.clone();
    let app = spawn_app_with(Backend::Sqlite, move |s| {
        let c = &mut s.providers.credentials;
        c.login_url = format!("{base}/api/v1/login/oauth");
        c.me_url = format!("{base}/api/v1/users/me");
        c.logout_url = format!("{base}/api/v1/logout");
        c.body = "form".into();
    })
    .await;
    let mut b = Browser::new(&app, "B");
    let seen = b.sign_in("ada", "wrong password").await;
    assert_eq!(seen.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        seen.json()["url"],
        format!("{PUBLIC_URL}/api/auth/error?error=CredentialsSignin&provider=credentials")
    );

    let seen = b.sign_in("ada", FASTAPI_PASSWORD).await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    let session = b.session().await;
    assert_eq!(
        session["user"],
        json!({"id": "4242", "name": "Fast Ada", "email": "ada@fast.example", "image": null})
    );
    {
        let journal = backend.journal.lock().unwrap();
        let login = journal
            .iter()
            .rfind(|r| r.path == "/api/v1/login/oauth")
            .unwrap();
        assert_eq!(login.content_type, "application/x-www-form-urlencoded");
        assert_eq!(
            login.body,
            format!("username=ada&password={FASTAPI_PASSWORD}")
        );
    }

    // update() re-reads the profile from me_url with the vaulted token
    let csrf = b.csrf().await;
    let seen = b
        .request(
            Method::POST,
            "/api/auth/session",
            Some(Body::Json(
                &json!({"csrfToken": csrf, "data": {"name": "ignored"}}),
            )),
            &[],
        )
        .await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    assert_eq!(seen.json()["user"]["name"], "Fast Ada Renamed");
    assert_eq!(b.session().await["user"]["name"], "Fast Ada Renamed");
    let me_call = backend
        .journal
        .lock()
        .unwrap()
        .iter()
        .rfind(|r| r.path == "/api/v1/users/me")
        .cloned()
        .unwrap();
    assert_eq!(
        me_call.authorization.as_deref(),
        Some("Bearer fa-access-ada")
    );
    assert!(
        !seen.body.contains("fa-access"),
        "the token never reaches the browser"
    );

    assert_eq!(b.sign_out(false).await.status, StatusCode::OK);
    assert_eq!(b.session().await, json!({}));
}

#[tokio::test]
async fn bff_sign_in_shares_the_login_rate_limit() {
    let app = app_with(Store::Redis, &sessiongate::crypto::generate_key()).await;
    let user = app.create_user().await;
    let mut b = Browser::new(&app, "B");
    for _ in 0..10 {
        assert_eq!(
            b.sign_in(&user.username, "wrong guess!").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let seen = b.sign_in(&user.username, &user.password).await;
    assert_eq!(seen.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(seen.headers.get("retry-after").is_some());
    assert_eq!(seen.json()["error"], "rate_limited");
    assert!(seen.json()["url"]
        .as_str()
        .unwrap()
        .contains("error=RateLimited"));
    // and the bundled API counts the same failures
    assert_eq!(
        app.login(&user.username, &user.password).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn session_update_rereads_the_bundled_profile() {
    let app = app_with(Store::Memory, &sessiongate::crypto::generate_key()).await;
    let (mut b, user) = signed_up(&app, "B").await;
    let resp = app
        .patch_me(
            &user.access_token,
            &json!({"first_name": "Grace", "last_name": "Hopper"}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        b.session().await["user"]["name"],
        user.username.as_str(),
        "unchanged until update()"
    );
    let csrf = b.csrf().await;
    let seen = b
        .request(
            Method::POST,
            "/api/auth/session",
            Some(Body::Json(&json!({"csrfToken": csrf}))),
            &[],
        )
        .await;
    assert_eq!(seen.json()["user"]["name"], "Grace Hopper");
    assert_eq!(b.session().await["user"]["name"], "Grace Hopper");
}

#[tokio::test]
async fn cors_is_off_unless_origins_are_listed() {
    let closed = app_with(Store::Memory, &sessiongate::crypto::generate_key()).await;
    let resp = closed
        .client
        .get(closed.url("/api/auth/session"))
        .header("origin", "https://spa.example")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());

    let open = spawn_app_with(Backend::Sqlite, |s| {
        s.server.cors_origins = vec!["https://spa.example".into()]
    })
    .await;
    let resp = open
        .client
        .get(open.url("/api/auth/session"))
        .header("origin", "https://spa.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://spa.example"
    );
    assert_eq!(resp.headers()["access-control-allow-credentials"], "true");
    let resp = open
        .client
        .get(open.url("/api/auth/session"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn a_password_reset_ends_browser_sessions_too() {
    let app = app_with(Store::Redis, &sessiongate::crypto::generate_key()).await;
    let (mut b, user) = signed_up(&app, "B").await;
    assert_eq!(
        app.post_json("/v1/auth/password/reset", &json!({"email": user.email}))
            .await
            .status(),
        StatusCode::ACCEPTED
    );
    let mail = &app.wait_for_mails(1).await[0];
    let start = mail.find("token=").unwrap() + 6;
    let token: String = mail[start..].chars().take(43).collect();
    let resp = app
        .post_json(
            "/v1/auth/password/reset/confirm",
            &json!({"token": token, "new_password": PASSWORD}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(b.session().await, json!({}));
}

#[tokio::test]
async fn production_mode_refuses_to_start_without_keys() {
    let dir = crate::helpers::tempdir::TempDir::new();
    let mut s = crate::helpers::test_settings(Backend::Sqlite, &dir.0).await;
    s.session.cookie_secure = true;
    s.session.keys = vec![];
    let err = sessiongate::startup::Application::build(s)
        .await
        .err()
        .expect("refused");
    assert!(format!("{err:#}").contains("session.keys"), "{err:#}");
}

/// A private redis-server on a free port, stopped on drop.
struct OwnRedis {
    child: std::process::Child,
}

impl OwnRedis {
    fn start(port: u16) -> Self {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed (the machine's Redis)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Self { child }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn service_resumes_by_itself_when_redis_returns() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let redis = OwnRedis::start(port);
    let app = spawn_app_with(Backend::Sqlite, move |s| {
        s.redis.url = Secret::new(format!("redis://127.0.0.1:{port}/"));
        s.redis.timeout = std::time::Duration::from_millis(500);
        s.session.keys = vec![Secret::new(sessiongate::crypto::generate_key())];
    })
    .await;
    let (mut b, user) = signed_up(&app, "B").await;
    assert_eq!(b.session().await["user"]["id"], user.id.as_str());

    drop(redis);
    // a write (sign-in) and a fresh read both need the store: 503, no hang, no 500
    let mut other = Browser::new(&app, "Other");
    let seen = other.sign_in(&user.username, &user.password).await;
    assert_eq!(
        seen.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        seen.body
    );
    assert_eq!(seen.json()["error"], "session_store_unavailable");
    assert_eq!(
        app.get("/readyz").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );

    let _redis = OwnRedis::start(port);
    // no restart of sessiongate: the connection manager reconnects by itself
    let mut resumed = false;
    for _ in 0..50 {
        if app.get("/readyz").await.status() == StatusCode::OK {
            resumed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(resumed, "readyz recovers");
    let seen = other.sign_in(&user.username, &user.password).await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    assert_eq!(other.session().await["user"]["id"], user.id.as_str());
}
