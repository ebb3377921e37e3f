//! "Sign in with 42" and OIDC providers, end to end over real HTTP: the browser (a
//! cookie-keeping client), sessiongate, and a stand-in provider on 127.0.0.1.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sessiongate::config::Settings;
use sessiongate::crypto::Secret;

use crate::browser::{Body, Browser, Seen};
use crate::helpers::{assert_error, spawn_app_with, Backend, TestApp, PUBLIC_URL};
use crate::idp::{ClientAuthRule, IdTokenMode, StandInIdp, TokenMode, CLIENT_ID, CLIENT_SECRET};
use crate::stand_ins::EchoUpstream;

pub enum Store {
    Redis,
    Memory,
}

fn table(pairs: &[(&str, String)]) -> sessiongate::config::toml_value::Table {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), figment::value::Value::from(v.clone())))
        .collect()
}

/// `[providers.fortytwo]` pointed at the stand-in.
fn fortytwo(s: &mut Settings, idp: &StandInIdp, extra: &[(&str, String)]) {
    let b = &idp.base;
    let mut pairs = vec![
        ("client_id", CLIENT_ID.to_owned()),
        ("client_secret", CLIENT_SECRET.to_owned()),
        ("authorize_url", format!("{b}/oauth/authorize")),
        ("token_url", format!("{b}/oauth/token")),
        ("profile_url", format!("{b}/v2/me")),
    ];
    pairs.extend(extra.iter().cloned());
    s.providers.others.insert("fortytwo".into(), table(&pairs));
}

/// `[providers.acme]`, an OIDC provider found by discovery at the stand-in.
fn acme(s: &mut Settings, idp: &StandInIdp, extra: &[(&str, String)]) {
    let mut pairs = vec![
        ("type", "oidc".to_owned()),
        ("name", "Acme ID".to_owned()),
        ("issuer", idp.base.clone()),
        ("client_id", CLIENT_ID.to_owned()),
        ("client_secret", CLIENT_SECRET.to_owned()),
    ];
    pairs.extend(extra.iter().cloned());
    s.providers.others.insert("acme".into(), table(&pairs));
}

async fn app_42(idp: &StandInIdp, store: Store) -> TestApp {
    spawn_app_with(Backend::Sqlite, |s| {
        fortytwo(s, idp, &[]);
        if matches!(store, Store::Memory) {
            s.redis.url = Secret::new("");
        }
    })
    .await
}

/// `signIn(provider, {callbackUrl: "/after"})` as next-auth/react sends it: returns the
/// provider's authorization URL.
async fn start(b: &mut Browser, provider: &str) -> String {
    let csrf = b.csrf().await;
    let form = [
        ("csrfToken", csrf.as_str()),
        ("callbackUrl", "/after"),
        ("json", "true"),
    ];
    let seen = b
        .request(
            Method::POST,
            &format!("/api/auth/signin/{provider}"),
            Some(Body::Form(&form)),
            &[],
        )
        .await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    seen.json()["url"].as_str().unwrap().to_owned()
}

/// Follows the provider's redirect back into sessiongate (the callback is on
/// `PUBLIC_URL`, which the test browser reaches at the app's real address).
async fn come_back(b: &mut Browser, location: &str) -> Seen {
    let path = location
        .strip_prefix(PUBLIC_URL)
        .unwrap_or_else(|| panic!("callback outside the public URL: {location}"));
    b.get(path).await
}

/// The whole dance for one browser: start, approve at the provider, come back.
async fn sign_in_with(b: &mut Browser, idp: &StandInIdp, provider: &str) -> Seen {
    let url = start(b, provider).await;
    let back = idp.approve(&url).await;
    come_back(b, &back).await
}

fn query(url: &str) -> std::collections::HashMap<String, String> {
    let q = url.split_once('?').map_or("", |(_, q)| q);
    oauth2::url::form_urlencoded::parse(q.as_bytes())
        .into_owned()
        .collect()
}

/// A failed callback: redirect to the error page with `code`, and no session at all.
async fn assert_failed(b: &mut Browser, seen: &Seen, code: &str) {
    assert_eq!(seen.status, StatusCode::FOUND, "{}", seen.body);
    let location = seen.location().unwrap();
    assert!(
        location.starts_with(&format!("{PUBLIC_URL}/api/auth/error?error={code}")),
        "{location}"
    );
    assert!(
        !seen
            .set_cookies()
            .iter()
            .any(|c| c.starts_with("sessiongate=")),
        "no session cookie on failure"
    );
    assert_eq!(b.session().await, json!({}));
}

async fn sign_in_with_42_shows_the_42_user(store: Store) {
    let idp = StandInIdp::spawn(false).await;
    let app = app_42(&idp, store).await;
    let mut b = Browser::new(&app, "Browser/42");

    let providers = b.get("/api/auth/providers").await.json();
    assert_eq!(
        providers["42"],
        json!({
            "id": "42", "name": "42", "type": "oauth",
            "signinUrl": format!("{PUBLIC_URL}/api/auth/signin/42"),
            "callbackUrl": format!("{PUBLIC_URL}/api/auth/callback/42"),
        })
    );

    let url = start(&mut b, "42").await;
    assert!(
        url.starts_with(&format!("{}/oauth/authorize?", idp.base)),
        "{url}"
    );
    let q = query(&url);
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["scope"], "public");
    assert_eq!(
        q["redirect_uri"],
        format!("{PUBLIC_URL}/api/auth/callback/42")
    );
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert!(q["state"].len() >= 32);
    assert!(!q.contains_key("nonce"), "no nonce for plain OAuth2");
    let binding = b.log.lock().unwrap().last().unwrap().set_cookies();
    let binding = binding
        .iter()
        .find(|c| c.starts_with("sessiongate.flow="))
        .expect("the sign-in is bound to this browser");
    assert!(
        binding.contains("HttpOnly")
            && binding.contains("SameSite=Lax")
            && binding.contains("Max-Age=600"),
        "{binding}"
    );

    let back = idp.approve(&url).await;
    let seen = come_back(&mut b, &back).await;
    assert_eq!(seen.status, StatusCode::FOUND, "{}", seen.body);
    assert_eq!(seen.location().unwrap(), format!("{PUBLIC_URL}/after"));
    assert!(b.session_cookie().is_some());

    let session = b.session().await;
    assert_eq!(
        session["user"],
        json!({"id": "90210", "name": "Jane Doe", "email": "jdoe@student.42.fr",
               "image": "https://cdn.intra.42.fr/users/jdoe.jpg"})
    );
    assert_eq!(session["provider"], "42");
    // Nothing the provider issued ever reaches the browser.
    let everything: String = b
        .log
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.body.clone())
        .collect();
    let (access, refresh) = idp.with(|s| {
        (
            s.access.keys().next().unwrap().clone(),
            s.refresh.keys().next().unwrap().clone(),
        )
    });
    assert!(!everything.contains(&access) && !everything.contains(&refresh));

    // What reached the token endpoint: the code grant, with the verifier, as 42 takes it.
    let (grant, how, form) = idp.with(|s| s.token_requests[0].clone());
    assert_eq!((grant.as_str(), how), ("authorization_code", "post"));
    assert_eq!(form["redirect_uri"], q["redirect_uri"]);
    assert!(form["code_verifier"].len() >= 43);
    // The profile is read once, at sign-in, never per request.
    b.session().await;
    b.session().await;
    assert_eq!(idp.with(|s| s.profile_fetches), 1);
}

crate::both_stores!(sign_in_with_42_shows_the_42_user);

/// Posts the only form of an HTML page, as a browser would.
async fn submit_form(b: &mut Browser, page: &str) -> Seen {
    let action = page
        .split("action=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let fields: Vec<(String, String)> = page
        .split("<input type=\"hidden\" name=\"")
        .skip(1)
        .map(|chunk| {
            let name = chunk.split('"').next().unwrap().to_owned();
            let value = chunk
                .split("value=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            (name, value.replace("&amp;", "&").replace("&#39;", "'"))
        })
        .collect();
    let pairs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    b.request(Method::POST, action, Some(Body::Form(&pairs)), &[])
        .await
}

#[tokio::test]
async fn a_plain_get_link_shows_the_providers_button() {
    let idp = StandInIdp::spawn(false).await;
    let app = app_42(&idp, Store::Redis).await;
    let mut b = Browser::new(&app, "Link");
    let page = b
        .get("/api/auth/signin/42?callbackUrl=https%3A%2F%2Fevil.example%2Fsteal")
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Sign in with 42"), "{}", page.body);
    assert!(
        !b.cookies.contains_key("sessiongate.flow"),
        "a link alone starts nothing"
    );
    let seen = submit_form(&mut b, &page.body).await;
    assert_eq!(seen.status, StatusCode::FOUND, "{}", seen.body);
    let back = idp.approve(&seen.location().unwrap()).await;
    let done = come_back(&mut b, &back).await;
    // A foreign callbackUrl is never honoured.
    assert_eq!(done.location().unwrap(), format!("{PUBLIC_URL}/"));
    assert_eq!(b.session().await["user"]["id"], "90210");

    // The sign-in page offers the provider; `credentials` has no provider redirect.
    let page = b.get("/api/auth/signin").await.body;
    assert!(page.contains("action=\"/api/auth/signin/42\""), "{page}");
    let creds = b.get("/api/auth/signin/credentials").await;
    assert_eq!(
        creds.location().unwrap(),
        format!("{PUBLIC_URL}/api/auth/signin")
    );
}

#[tokio::test]
async fn the_state_is_single_use_and_bound_to_the_browser_that_started() {
    let idp = StandInIdp::spawn(false).await;
    let app = app_42(&idp, Store::Redis).await;
    let mut victim = Browser::new(&app, "Victim");
    let mut attacker = Browser::new(&app, "Attacker");

    // A callback link started in one browser and opened in another signs no one in...
    let url = start(&mut attacker, "42").await;
    let back = idp.approve(&url).await;
    let seen = come_back(&mut victim, &back).await;
    assert_failed(&mut victim, &seen, "OAuthCallback").await;
    // ...and spends the state: the starting browser cannot use it afterwards either.
    let seen = come_back(&mut attacker, &back).await;
    assert_failed(&mut attacker, &seen, "OAuthCallback").await;

    // A successful callback cannot be replayed.
    let mut b = Browser::new(&app, "Owner");
    let url = start(&mut b, "42").await;
    let back = idp.approve(&url).await;
    assert_eq!(come_back(&mut b, &back).await.status, StatusCode::FOUND);
    assert_eq!(b.session().await["provider"], "42");
    let mut replay = Browser::new(&app, "Replay");
    replay.cookies = b
        .cookies
        .iter()
        .filter(|(k, _)| k.as_str() == "sessiongate.flow")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let seen = come_back(&mut replay, &back).await;
    assert_failed(&mut replay, &seen, "OAuthCallback").await;

    // Two tabs of one browser can sign in at the same time.
    let mut tabs = Browser::new(&app, "Tabs");
    let first = start(&mut tabs, "42").await;
    let second = start(&mut tabs, "42").await;
    let (a, c) = (idp.approve(&first).await, idp.approve(&second).await);
    assert_eq!(
        come_back(&mut tabs, &c).await.location().unwrap(),
        format!("{PUBLIC_URL}/after")
    );
    assert_eq!(
        come_back(&mut tabs, &a).await.location().unwrap(),
        format!("{PUBLIC_URL}/after")
    );
}

#[tokio::test]
async fn an_expired_state_fails_and_the_store_holds_flows_for_ten_minutes() {
    let idp = StandInIdp::spawn(false).await;
    let app = app_42(&idp, Store::Redis).await;
    let mut b = Browser::new(&app, "Slow user");
    let url = start(&mut b, "42").await;
    let back = idp.approve(&url).await;

    let mut conn = redis::Client::open(crate::helpers::REDIS_URL)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}flow:*", app.redis_prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        keys.len(),
        1,
        "one pending flow, keyed by a hash of the state"
    );
    assert!(!keys[0].contains(&query(&url)["state"]));
    let ttl: i64 = redis::cmd("TTL")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((590..=600).contains(&ttl), "{ttl}");
    let stored: Vec<u8> = redis::cmd("GET")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!String::from_utf8_lossy(&stored).contains(CLIENT_SECRET));

    // The ten minutes pass (on the app's clock; the store's TTL was read above).
    app.clock.advance(std::time::Duration::from_secs(601));
    let seen = come_back(&mut b, &back).await;
    assert_failed(&mut b, &seen, "OAuthCallback").await;
    assert_eq!(
        idp.with(|s| s.token_requests.len()),
        0,
        "no code was exchanged"
    );
}

/// Hardening finding 7: a pending sign-in is sealed like a session: nothing in the store
/// shows its PKCE verifier, its nonce or where it goes next; and it still completes.
#[tokio::test]
async fn pending_sign_ins_are_sealed_in_the_store() {
    let idp = StandInIdp::spawn(true).await;
    let app = spawn_app_with(Backend::Sqlite, |s| acme(s, &idp, &[])).await;
    let mut b = Browser::new(&app, "Sealed");
    let url = start(&mut b, "acme").await;
    let nonce = query(&url)["nonce"].clone();

    let mut conn = redis::Client::open(crate::helpers::REDIS_URL)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}flow:*", app.redis_prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1);
    let stored: Vec<u8> = redis::cmd("GET")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&stored);
    assert!(serde_json::from_slice::<Value>(&stored).is_err(), "{text}");
    for clear in [nonce.as_str(), "verifier", "nonce", "/after", "acme"] {
        assert!(!text.contains(clear), "`{clear}` readable in {text}");
    }

    let back = idp.approve(&url).await;
    let seen = come_back(&mut b, &back).await;
    assert_eq!(seen.status, StatusCode::FOUND, "{}", seen.body);
    assert_eq!(seen.location().unwrap(), format!("{PUBLIC_URL}/after"));
    assert_eq!(b.session().await["provider"], "acme");
}

#[tokio::test]
async fn refusals_and_broken_callbacks_store_nothing() {
    let idp = StandInIdp::spawn(false).await;
    let app = app_42(&idp, Store::Redis).await;
    let mut b = Browser::new(&app, "Refusals");

    // The user says no.
    idp.with(|s| s.deny = true);
    let url = start(&mut b, "42").await;
    let back = idp.approve(&url).await;
    assert!(back.contains("error=access_denied"));
    let seen = come_back(&mut b, &back).await;
    assert_failed(&mut b, &seen, "AccessDenied").await;
    idp.with(|s| s.deny = false);

    // Missing, unknown and garbage states.
    for path in [
        "/api/auth/callback/42?code=abc",
        "/api/auth/callback/42?code=abc&state=never-issued",
        "/api/auth/callback/42?code=abc&state=%00%0D%0A",
        "/api/auth/callback/42",
    ] {
        let seen = b.get(path).await;
        assert_failed(&mut b, &seen, "OAuthCallback").await;
    }

    // Unknown providers are 404 JSON on every route.
    assert_error(
        app.client
            .get(app.url("/api/auth/callback/nope?code=a&state=b"))
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_error(
        app.client
            .get(app.url("/api/auth/signin/nope"))
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    // A sign-in start without the CSRF token is refused.
    let seen = b
        .request(
            Method::POST,
            "/api/auth/signin/42",
            Some(Body::Form(&[("json", "true")])),
            &[],
        )
        .await;
    assert_eq!(seen.status, StatusCode::FORBIDDEN, "{}", seen.body);
}

#[tokio::test]
async fn token_and_profile_failures_end_on_the_error_page() {
    let idp = StandInIdp::spawn(false).await;
    let app = app_42(&idp, Store::Redis).await;
    let mut b = Browser::new(&app, "Failures");

    // A code the token endpoint rejects (not the one it issued).
    let url = start(&mut b, "42").await;
    let back = idp
        .approve(&url)
        .await
        .replace("code=code-", "code=forged-");
    let seen = come_back(&mut b, &back).await;
    assert_failed(&mut b, &seen, "OAuthCallback").await;

    // Down, then garbage.
    for mode in [TokenMode::Down, TokenMode::Garbage] {
        idp.with(|s| s.token_mode = mode);
        let seen = sign_in_with(&mut b, &idp, "42").await;
        assert_failed(&mut b, &seen, "OAuthCallback").await;
    }
    idp.with(|s| s.token_mode = TokenMode::Normal);

    // The profile endpoint fails.
    idp.with(|s| s.profile_fails = true);
    let seen = sign_in_with(&mut b, &idp, "42").await;
    assert_failed(&mut b, &seen, "OAuthCallback").await;
    idp.with(|s| s.profile_fails = false);

    // A profile without an id.
    idp.with(|s| s.user = json!({"login": "ghost"}));
    let seen = sign_in_with(&mut b, &idp, "42").await;
    assert_failed(&mut b, &seen, "OAuthCallback").await;

    // The error page explains in words, and never shows the provider's detail.
    let page = b.get("/api/auth/error?error=OAuthCallback").await.body;
    assert!(page.contains("did not work"), "{page}");
    assert!(!page.contains("invalid_grant"));
}

#[tokio::test]
async fn sign_in_starts_are_rate_limited_per_ip() {
    let idp = StandInIdp::spawn(false).await;
    let app = spawn_app_with(Backend::Sqlite, |s| {
        fortytwo(s, &idp, &[]);
        s.rate_limit.oauth_signin_per_ip = "2/1m".parse().unwrap();
    })
    .await;
    let mut b = Browser::new(&app, "Flood");
    start(&mut b, "42").await;
    start(&mut b, "42").await;
    let csrf = b.csrf().await;
    let seen = b
        .request(
            Method::POST,
            "/api/auth/signin/42",
            Some(Body::Form(&[("csrfToken", &csrf), ("json", "true")])),
            &[],
        )
        .await;
    assert_eq!(seen.status, StatusCode::TOO_MANY_REQUESTS, "{}", seen.body);
    assert_eq!(seen.json()["error"], "rate_limited");
    assert!(seen.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn a_provider_that_is_down_at_the_start_is_an_error_not_a_hang() {
    let idp = StandInIdp::spawn(true).await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let app = spawn_app_with(Backend::Sqlite, |s| {
        acme(s, &idp, &[]);
        if let Some(t) = s.providers.others.get_mut("acme") {
            t.insert("issuer".into(), closed.clone().into());
        }
    })
    .await;
    let mut b = Browser::new(&app, "Down");
    let page = b.get("/api/auth/signin/acme").await.body;
    let seen = submit_form(&mut b, &page).await;
    assert_eq!(seen.status, StatusCode::FOUND);
    assert_eq!(
        seen.location().unwrap(),
        format!("{PUBLIC_URL}/api/auth/error?error=Unavailable")
    );
}

#[tokio::test]
async fn oidc_sign_in_validates_the_id_token() {
    let idp = StandInIdp::spawn(true).await;
    let app = spawn_app_with(Backend::Postgres, |s| acme(s, &idp, &[])).await;
    let mut b = Browser::new(&app, "OIDC");

    let url = start(&mut b, "acme").await;
    let q = query(&url);
    assert_eq!(q["scope"], "openid email profile");
    assert!(q["nonce"].len() >= 32, "OIDC sign-ins carry a nonce");
    let seen = come_back(&mut b, &idp.approve(&url).await).await;
    assert_eq!(seen.status, StatusCode::FOUND, "{}", seen.body);
    assert_eq!(seen.location().unwrap(), format!("{PUBLIC_URL}/after"));
    let session = b.session().await;
    assert_eq!(session["provider"], "acme");
    assert_eq!(
        session["user"],
        json!({"id": "90210", "name": "Jane Doe", "email": "jdoe@student.42.fr",
               "image": "https://cdn.intra.42.fr/users/jdoe.jpg"})
    );
    // client_secret_basic is OIDC's default.
    assert_eq!(idp.with(|s| s.token_requests[0].1), "basic");

    // Every broken id_token fails the sign-in and creates nothing.
    for mode in [
        IdTokenMode::BadSignature,
        IdTokenMode::WrongAudience,
        IdTokenMode::Expired,
        IdTokenMode::WrongNonce,
        IdTokenMode::Missing,
        // Hardening finding 13 (OIDC Core §3.1.3.7): not valid yet, issued in the future.
        IdTokenMode::NotYetValid,
        IdTokenMode::IssuedInTheFuture,
    ] {
        idp.with(|s| s.id_token_mode = mode);
        let mut other = Browser::new(&app, "Broken");
        let seen = sign_in_with(&mut other, &idp, "acme").await;
        assert_failed(&mut other, &seen, "OAuthCallback").await;
    }
    idp.with(|s| s.id_token_mode = IdTokenMode::Good);

    // A new signing key: the JWKS is fetched again, once; discovery stays cached.
    let jwks_before = idp.with(|s| s.jwks_fetches);
    idp.rotate_key();
    let mut rotated = Browser::new(&app, "Rotated");
    let seen = sign_in_with(&mut rotated, &idp, "acme").await;
    assert_eq!(seen.location().unwrap(), format!("{PUBLIC_URL}/after"));
    assert_eq!(idp.with(|s| s.jwks_fetches), jwks_before + 1);
    assert_eq!(idp.with(|s| s.discovery_fetches), 1);
}

/// Hardening finding 11: a provider answering a sign-in's or a refresh's token request
/// with 256 MiB is read no further than 1 MiB; the sign-in fails on the error page, and
/// the refresh answers 503 and keeps the session.
#[tokio::test]
async fn a_provider_that_answers_too_much_is_cut_off() {
    let idp = StandInIdp::spawn(true).await;
    let echo = EchoUpstream::spawn().await;
    let eb = echo.base.clone();
    let app = spawn_app_with(Backend::Sqlite, |s| {
        acme(s, &idp, &[]);
        s.proxy
            .routes
            .push(crate::helpers::proxy_route("/api/acme", &eb, "acme"));
    })
    .await;
    idp.with(|s| s.token_mode = TokenMode::Huge);
    let mut b = Browser::new(&app, "Flooded");
    let seen = sign_in_with(&mut b, &idp, "acme").await;
    assert_failed(&mut b, &seen, "OAuthCallback").await;
    let sent = idp.with(|s| s.huge_sent.load(std::sync::atomic::Ordering::Relaxed));
    assert!(sent < 32 << 20, "{} MiB were produced", sent >> 20);

    // A refresh answered the same way: unavailable, and the session stays.
    idp.with(|s| {
        s.token_mode = TokenMode::Normal;
        s.expires_in = 5;
    });
    let seen = sign_in_with(&mut b, &idp, "acme").await;
    assert_eq!(seen.status, StatusCode::FOUND, "{}", seen.body);
    idp.with(|s| {
        s.token_mode = TokenMode::Huge;
        s.huge_sent.store(0, std::sync::atomic::Ordering::Relaxed);
    });
    let seen = b.get("/api/acme/x").await;
    assert_eq!(
        seen.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        seen.body
    );
    assert_eq!(seen.json()["code"], "refresh_unavailable");
    let sent = idp.with(|s| s.huge_sent.load(std::sync::atomic::Ordering::Relaxed));
    assert!(
        sent > 0 && sent < 32 << 20,
        "{} MiB were produced",
        sent >> 20
    );
    assert_eq!(b.session().await["provider"], "acme", "the session stays");
    idp.with(|s| s.token_mode = TokenMode::Normal);
    assert_eq!(b.get("/api/acme/x").await.status, StatusCode::OK);
}

#[tokio::test]
async fn client_secret_post_is_used_when_configured() {
    let idp = StandInIdp::spawn(true).await;
    idp.with(|s| s.client_auth = ClientAuthRule::Post);
    let app = spawn_app_with(Backend::Sqlite, |s| {
        acme(s, &idp, &[("client_auth", "client_secret_post".into())])
    })
    .await;
    let mut b = Browser::new(&app, "Post");
    let seen = sign_in_with(&mut b, &idp, "acme").await;
    assert_eq!(seen.location().unwrap(), format!("{PUBLIC_URL}/after"));
    assert_eq!(idp.with(|s| s.token_requests[0].1), "post");
}

/// The proxy refreshes the provider's token ahead of expiry (rotating refresh tokens),
/// a refused refresh ends the session, and sign-out revokes what is left.
#[tokio::test]
async fn proxied_calls_refresh_rotate_and_sign_out_revokes() {
    let idp = StandInIdp::spawn(true).await;
    // Expires within the refresh skew: every proxied call refreshes first.
    idp.with(|s| s.expires_in = 30);
    let echo = EchoUpstream::spawn().await;
    let eb = echo.base.clone();
    let app = spawn_app_with(Backend::Sqlite, |s| {
        acme(s, &idp, &[]);
        s.proxy
            .routes
            .push(crate::helpers::proxy_route("/api/acme", &eb, "acme"));
    })
    .await;
    let mut b = Browser::new(&app, "Proxy");
    sign_in_with(&mut b, &idp, "acme").await;
    let first_refresh = idp.with(|s| s.refresh.keys().next().unwrap().clone());

    let seen = b.get("/api/acme/me").await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    let bearer = seen.json()["headers"]["authorization"]
        .as_str()
        .unwrap()
        .to_owned();
    let (grant, _, form) = idp.with(|s| s.token_requests.last().unwrap().clone());
    assert_eq!(grant, "refresh_token");
    assert_eq!(form["refresh_token"], first_refresh);
    let live = idp.with(|s| s.access.keys().cloned().collect::<Vec<_>>());
    assert!(live.iter().any(|t| bearer == format!("Bearer {t}")));

    // The rotated refresh token is the one used next.
    b.get("/api/acme/me").await;
    let (_, _, form) = idp.with(|s| s.token_requests.last().unwrap().clone());
    assert_ne!(form["refresh_token"], first_refresh);
    let current = form["refresh_token"].clone();
    assert_eq!(idp.with(|s| s.refresh.get(&current).copied()), Some(false));

    // Sign-out revokes the refresh token, then the access token (RFC 7009).
    let csrf = b.csrf().await;
    let out = b
        .request(
            Method::POST,
            "/api/auth/signout",
            Some(Body::Form(&[("csrfToken", &csrf), ("json", "true")])),
            &[],
        )
        .await;
    assert_eq!(out.status, StatusCode::OK);
    let revoked = idp.with(|s| s.revoked.clone());
    assert_eq!(revoked.len(), 2, "{revoked:?}");
    assert_eq!(revoked[0].1, "refresh_token");
    assert_eq!(revoked[1].1, "access_token");
    assert_eq!(b.session().await, json!({}));

    // A refresh the provider refuses ends the session.
    let mut c = Browser::new(&app, "Refused");
    sign_in_with(&mut c, &idp, "acme").await;
    idp.with(|s| s.refresh.values_mut().for_each(|v| *v = false));
    let seen = c.get("/api/acme/me").await;
    let body: Value = seen.json();
    assert_eq!(seen.status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "session_expired");
    assert_eq!(c.session().await, json!({}));
}

#[tokio::test]
async fn without_a_refresh_token_the_session_ends_with_the_access_token() {
    let idp = StandInIdp::spawn(false).await;
    idp.with(|s| {
        s.issue_refresh = false;
        s.expires_in = 2;
    });
    let app = app_42(&idp, Store::Redis).await;
    let mut b = Browser::new(&app, "Short");
    sign_in_with(&mut b, &idp, "42").await;
    let session = b.session().await;
    assert_eq!(session["provider"], "42");
    app.clock.advance(std::time::Duration::from_secs(3));
    assert_eq!(b.session().await, json!({}));
}

/// The provider's token endpoint is down during a refresh: 503 `refresh_unavailable`,
/// the session is kept; once it is back, the next request refreshes and goes through.
#[tokio::test]
async fn a_provider_outage_during_refresh_keeps_the_session() {
    let idp = StandInIdp::spawn(false).await;
    idp.with(|s| s.expires_in = 30);
    let echo = EchoUpstream::spawn().await;
    let eb = echo.base.clone();
    let app = spawn_app_with(Backend::Sqlite, |s| {
        fortytwo(s, &idp, &[]);
        s.proxy
            .routes
            .push(crate::helpers::proxy_route("/api/42", &eb, "42"));
    })
    .await;
    let mut b = Browser::new(&app, "Outage");
    sign_in_with(&mut b, &idp, "42").await;

    idp.with(|s| s.token_mode = TokenMode::Down);
    let seen = b.get("/api/42/me").await;
    assert_eq!(
        seen.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        seen.body
    );
    assert_eq!(seen.json()["error"], "refresh_unavailable");
    assert_eq!(b.session().await["provider"], "42", "the session is kept");
    assert!(
        echo.journal.lock().unwrap().is_empty(),
        "nothing reached the upstream"
    );

    idp.with(|s| s.token_mode = TokenMode::Normal);
    let seen = b.get("/api/42/me").await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    let (grant, _, _) = idp.with(|s| s.token_requests.last().unwrap().clone());
    assert_eq!(grant, "refresh_token");

    // A refusal sent as GitHub does (200 with an error body) ends the session: it is
    // not an outage to wait out.
    idp.with(|s| s.token_mode = TokenMode::RefusalIn200);
    let seen = b.get("/api/42/me").await;
    assert_eq!(seen.status, StatusCode::UNAUTHORIZED, "{}", seen.body);
    assert_eq!(seen.json()["error"], "session_expired");
    assert_eq!(b.session().await, json!({}));
}
