//! The bundled authorization server (`/oauth`): the seed's lifecycle step by step over
//! real HTTP, a BFF signing in through it, and every bad input of the issue.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sessiongate::config::OAuthClientSettings;
use sessiongate::crypto::Secret;

use crate::browser::{Body, Browser};
use crate::helpers::{spawn_app_with, Backend, PUBLIC_URL};
use crate::oauth_flow::*;

async fn seed_lifecycle_step_by_step(backend: Backend) {
    let app = server(backend).await;
    let alice = app.create_user().await;
    let mut b = Browser::new(&app, "Alice");

    // STEP 1: not signed in at the server → its sign-in page, then back here.
    let seen = b.get(&seed_request()).await;
    assert_eq!(seen.status, StatusCode::FOUND);
    let to_signin = seen.location().unwrap();
    assert!(to_signin.starts_with(&format!("{PUBLIC_URL}/api/auth/signin?callbackUrl=")));
    let back = query(&to_signin)["callbackUrl"].clone();
    assert_eq!(back, seed_request());

    // STEP 2: she signs in; the consent page names the client and the scopes.
    sign_in(&mut b, &alice, &back).await;
    let page = b.get(&back).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page
        .body
        .contains("Allow Prescription Manager to use your account?"));
    assert!(page.body.contains(&alice.username));
    // Never framed (clickjacking); the policy also allows no script at all.
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("default-src 'none'"), "{csp}");

    // STEP 3: "Allow" → redirect with the code and the state.
    let seen = decide(&mut b, &page.body, "allow").await;
    assert_eq!(seen.status, StatusCode::FOUND, "{}", seen.body);
    let location = seen.location().unwrap();
    assert!(
        location.starts_with(&format!("{REDIRECT}?code=")),
        "{location}"
    );
    let q = query(&location);
    assert_eq!(q["state"], "xyzABC123");
    assert_eq!(q["iss"], PUBLIC_URL);

    // STEPS 4–5: the code for tokens (JSON body, as in the seed).
    let resp = token(&app, &code_grant(&q["code"])).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let tokens: Value = resp.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 3600);
    assert_eq!(tokens["scope"], "user profile");
    assert!(
        tokens.get("id_token").is_none(),
        "no openid scope, no id_token"
    );
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();

    // STEP 6: the protected resource.
    let me: Value = userinfo(&app, &access).await.json().await.unwrap();
    assert_eq!(me["sub"], alice.id);
    assert_eq!(me["preferred_username"], alice.username);
    assert_eq!(me["email"], alice.email);

    // STEP 7: refresh (rotation).
    let resp = token(
        &app,
        &json!({"grant_type": "refresh_token", "refresh_token": refresh,
                "client_id": CLIENT, "client_secret": SECRET}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let fresh: Value = resp.json().await.unwrap();
    let access2 = fresh["access_token"].as_str().unwrap().to_owned();
    let refresh2 = fresh["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh2, refresh);
    assert_eq!(userinfo(&app, &access2).await.status(), StatusCode::OK);

    // Introspection sees the token, for its own client only.
    let intro: Value = app
        .client
        .post(app.url("/oauth/introspect"))
        .basic_auth(CLIENT, Some(SECRET))
        .form(&[("token", access2.as_str())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(intro["active"], true);
    assert_eq!(intro["username"], alice.username);
    let other: Value = app
        .client
        .post(app.url("/oauth/introspect"))
        .basic_auth("other_app", Some("another very secret key"))
        .form(&[("token", access2.as_str())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(other, json!({"active": false}));

    // STEP 8–9, scenario A: the client revokes the access token (RFC 7009).
    let resp = app
        .post_json(
            "/oauth/revoke",
            &json!({"token": access2, "client_id": CLIENT, "client_secret": SECRET}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    rfc_error(
        userinfo(&app, &access2).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    // Revoking the refresh token ends what is left of the grant.
    let resp = app
        .post_json(
            "/oauth/revoke",
            &json!({"token": refresh2, "client_id": CLIENT, "client_secret": SECRET}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_grant_dead(&app, &access, &refresh2).await;
    // Unknown tokens are "revoked" too (200), as RFC 7009 says.
    let resp = app
        .post_json(
            "/oauth/revoke",
            &json!({"token": "never-issued", "client_id": CLIENT, "client_secret": SECRET}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);

    // Scenario B: the consent is remembered (no page), then Alice disconnects the app.
    let seen = b.get(&seed_request()).await;
    assert_eq!(seen.status, StatusCode::FOUND, "consent remembered");
    let code = query(&seen.location().unwrap())["code"].clone();
    let tokens: Value = token(&app, &code_grant(&code)).await.json().await.unwrap();
    let access3 = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh3 = tokens["refresh_token"].as_str().unwrap().to_owned();
    let apps = b.get("/manage-apps").await;
    assert!(apps.body.contains("Prescription Manager"), "{}", apps.body);
    assert!(apps.body.contains("Revoke access"));
    let csrf = page_token(&apps.body);
    let seen = b
        .request(
            Method::POST,
            "/oauth/deauthorise",
            Some(Body::Form(&[("client_id", CLIENT), ("csrfToken", &csrf)])),
            &[],
        )
        .await;
    assert_eq!(seen.status, StatusCode::FOUND);
    assert_eq!(
        seen.location().unwrap(),
        format!("{PUBLIC_URL}/manage-apps")
    );
    assert_grant_dead(&app, &access3, &refresh3).await;
    let apps = b.get("/manage-apps").await;
    assert!(apps.body.contains("No app has access"), "{}", apps.body);
    assert_eq!(
        b.get(&seed_request()).await.status,
        StatusCode::OK,
        "consent asked again"
    );
}

crate::both_databases!(seed_lifecycle_step_by_step);

#[tokio::test]
async fn the_bff_signs_in_through_this_server_by_oidc() {
    let port = crate::helpers::free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let iss = issuer.clone();
    let idp = spawn_app_with(Backend::Sqlite, move |s| {
        s.server.listen = format!("127.0.0.1:{port}").parse().unwrap();
        s.server.public_url = iss.clone();
        s.oauth.clients = vec![OAuthClientSettings {
            client_id: "bff".into(),
            client_secret: Secret::new("bff client secret 0123456789"),
            name: "The SPA".into(),
            redirect_uris: vec![format!("{PUBLIC_URL}/api/auth/callback/sessiongate")],
            scopes: "openid profile email".into(),
            public: false,
            ..Default::default()
        }];
    })
    .await;
    let alice = idp.create_user().await;
    let iss = issuer.clone();
    let bff = spawn_app_with(Backend::Sqlite, move |s| {
        let table = [
            ("type", "oidc"),
            ("name", "sessiongate"),
            ("issuer", iss.as_str()),
            ("client_id", "bff"),
            ("client_secret", "bff client secret 0123456789"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), figment::value::Value::from(v)))
        .collect();
        s.providers.others.insert("sessiongate".into(), table);
    })
    .await;

    let mut spa = Browser::new(&bff, "SPA");
    let mut at_idp = Browser::new(&idp, "SPA");
    let csrf = spa.csrf().await;
    let started = spa
        .request(
            Method::POST,
            "/api/auth/signin/sessiongate",
            Some(Body::Form(&[
                ("csrfToken", &csrf),
                ("callbackUrl", "/home"),
                ("json", "true"),
            ])),
            &[],
        )
        .await;
    let url = started.json()["url"].as_str().unwrap().to_owned();
    let path = url.strip_prefix(&issuer).unwrap().to_owned();
    assert!(path.starts_with("/oauth/authorize?"), "{path}");
    assert!(query(&url).contains_key("code_challenge"));

    let seen = at_idp.get(&path).await;
    let back = query(&seen.location().unwrap())["callbackUrl"].clone();
    sign_in(&mut at_idp, &alice, &back).await;
    let page = at_idp.get(&back).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let seen = decide(&mut at_idp, &page.body, "allow").await;
    let callback = seen.location().unwrap();
    let done = spa.get(callback.strip_prefix(PUBLIC_URL).unwrap()).await;
    assert_eq!(done.status, StatusCode::FOUND, "{}", done.body);
    assert_eq!(done.location().unwrap(), format!("{PUBLIC_URL}/home"));
    let session = spa.session().await;
    assert_eq!(session["provider"], "sessiongate");
    assert_eq!(session["user"]["id"], alice.id);
    assert_eq!(session["user"]["email"], alice.email);

    // Discovery and JWKS as a relying party sees them.
    let d: Value = idp
        .client
        .get(idp.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["issuer"], issuer);
    assert_eq!(d["code_challenge_methods_supported"], json!(["S256"]));
    let jwks: Value = idp
        .client
        .get(idp.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // One key of each algorithm (OIDC Core §15.1: RS256; ES256 on request), public
    // parts only.
    let keys = jwks["keys"].as_array().unwrap();
    let types: Vec<&str> = keys.iter().map(|k| k["kty"].as_str().unwrap()).collect();
    assert_eq!(types, ["RSA", "EC"], "{jwks}");
    for k in keys {
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(k[private].is_null(), "never the private part: {k}");
        }
    }
}

/// The default configuration's "Sign in with sessiongate": the BFF is a client of its own
/// authorization server, registered at start.
#[tokio::test]
async fn sign_in_with_sessiongate_goes_through_its_own_oauth_server() {
    let (app, base) = self_provider_app().await;
    let alice = app.create_user().await;
    let mut b = Browser::new(&app, "Self");
    let providers = b.get("/api/auth/providers").await.json();
    assert_eq!(providers["sessiongate"]["type"], "oauth");
    sign_in_with_sessiongate(&mut b, &base, &alice).await;
    let session = b.session().await;
    assert_eq!(session["provider"], "sessiongate");
    assert_eq!(session["user"]["id"], alice.id);
}

#[tokio::test]
async fn authorization_requests_that_cannot_be_trusted_are_never_redirected() {
    let app = server(Backend::Sqlite).await;
    let user = app.create_user().await;
    let mut b = Browser::new(&app, "Bad");
    sign_in(&mut b, &user, "/").await;
    let base = [
        ("response_type", "code"),
        ("client_id", CLIENT),
        ("redirect_uri", REDIRECT),
        ("scope", "openid"),
        ("state", "s1"),
    ];
    let with = |k: &str, v: &str| {
        let mut p: Vec<(&str, String)> = base.iter().map(|(a, b)| (*a, (*b).to_owned())).collect();
        for e in p.iter_mut().filter(|(a, _)| *a == k) {
            e.1 = v.to_owned();
        }
        let pairs: Vec<(&str, &str)> = p.iter().map(|(a, b)| (*a, b.as_str())).collect();
        authorize_path(&pairs)
    };
    // Unknown client, and redirect URIs that differ by a slash, case, port or query.
    for path in [
        with("client_id", "nobody"),
        with("redirect_uri", "http://127.0.0.1:5000/callback/"),
        with("redirect_uri", "http://127.0.0.1:5000/Callback"),
        with("redirect_uri", "http://127.0.0.1:5001/callback"),
        with("redirect_uri", "http://127.0.0.1:5000/callback?x=1"),
        with("redirect_uri", "https://evil.example/callback"),
        format!("{}&client_id={CLIENT}", seed_request()),
        authorize_path(&[("response_type", "code"), ("redirect_uri", REDIRECT)]),
    ] {
        let seen = b.get(&path).await;
        assert_eq!(seen.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(seen.location().is_none(), "{path}");
        assert!(seen.body.contains("not valid"), "{path}");
    }

    // Everything else goes back to the client with its RFC error and the state.
    let cases: Vec<(String, &str)> = vec![
        (with("response_type", "token"), "unsupported_response_type"),
        (with("response_type", ""), "invalid_request"),
        (with("scope", "openid admin"), "invalid_scope"),
        (
            format!(
                "{}&code_challenge_method=plain&code_challenge={}",
                with("state", "s1"),
                "a".repeat(43)
            ),
            "invalid_request",
        ),
        (
            format!("{}&code_challenge=short", with("state", "s1")),
            "invalid_request",
        ),
        (
            format!("{}&state=again", with("state", "s1")),
            "invalid_request",
        ),
        (
            authorize_path(&[
                ("response_type", "code"),
                ("client_id", PUBLIC_CLIENT),
                ("redirect_uri", "http://localhost:3000/cb"),
                ("state", "s1"),
            ]),
            "invalid_request",
        ),
    ];
    for (path, error) in cases {
        let seen = b.get(&path).await;
        assert_eq!(seen.status, StatusCode::FOUND, "{path}");
        let location = seen.location().unwrap();
        let q = query(&location);
        assert_eq!(q["error"], error, "{path} → {location}");
        assert_eq!(q["state"], "s1", "{path}");
        assert!(!q.contains_key("code"));
    }
    // The "other" client may not ask for `email`.
    let seen = b
        .get(&authorize_path(&[
            ("response_type", "code"),
            ("client_id", "other_app"),
            ("redirect_uri", REDIRECT),
            ("scope", "openid email"),
        ]))
        .await;
    assert_eq!(query(&seen.location().unwrap())["error"], "invalid_scope");

    // Consent posted without the page's CSRF token: nothing is issued.
    let page = b.get(&seed_request()).await;
    let fields: Vec<(String, String)> = crate::browser::form_fields(&page.body)
        .into_iter()
        .filter(|(k, _)| k != "csrfToken")
        .chain([("decision".to_owned(), "allow".to_owned())])
        .collect();
    let pairs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let seen = b
        .request(
            Method::POST,
            "/oauth/authorize",
            Some(Body::Form(&pairs)),
            &[],
        )
        .await;
    assert_eq!(seen.status, StatusCode::FORBIDDEN);
    assert!(seen.location().is_none());
    // Deny → access_denied with the state.
    let seen = decide(&mut b, &page.body, "deny").await;
    let q = query(&seen.location().unwrap());
    assert_eq!(
        (q["error"].as_str(), q["state"].as_str()),
        ("access_denied", "xyzABC123")
    );
}

#[tokio::test]
async fn the_token_endpoint_refuses_each_bad_request_with_its_rfc_error() {
    // The default code lifetime (60 s): the expiry case moves the clock past it. (A 1 s
    // lifetime on a clock that runs in whole seconds made any code used across a second
    // boundary expire, so the test failed on a loaded machine.)
    let app = spawn_app_with(Backend::Sqlite, clients).await;
    let user = app.create_user().await;
    let mut b = Browser::new(&app, "Tokens");
    sign_in(&mut b, &user, "/").await;

    // Client authentication.
    let code = code_for(&app, &mut b).await;
    let mut wrong = code_grant(&code);
    wrong["client_secret"] = json!("wrong");
    let resp = token(&app, &wrong).await;
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Basic realm=\"sessiongate\""
    );
    rfc_error(resp, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let mut none = code_grant(&code);
    none.as_object_mut()
        .unwrap()
        .retain(|k, _| !k.starts_with("client_"));
    rfc_error(
        token(&app, &none).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
    let both = app
        .client
        .post(app.url("/oauth/token"))
        .basic_auth(CLIENT, Some(SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_secret", SECRET),
        ])
        .send()
        .await
        .unwrap();
    rfc_error(both, StatusCode::BAD_REQUEST, "invalid_request").await;

    // Grant types and parameters.
    let mut g = code_grant(&code);
    g["grant_type"] = json!("password");
    rfc_error(
        token(&app, &g).await,
        StatusCode::BAD_REQUEST,
        "unsupported_grant_type",
    )
    .await;
    g.as_object_mut().unwrap().remove("grant_type");
    rfc_error(
        token(&app, &g).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    let repeated = app
        .client
        .post(app.url("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("grant_type=authorization_code&code={code}&code=x&redirect_uri={}&client_id={CLIENT}&client_secret={SECRET}", encode(REDIRECT)))
        .send()
        .await
        .unwrap();
    rfc_error(repeated, StatusCode::BAD_REQUEST, "invalid_request").await;
    let in_url = app
        .client
        .post(app.url(&format!("/oauth/token?client_secret={SECRET}")))
        .json(&code_grant(&code))
        .send()
        .await
        .unwrap();
    rfc_error(in_url, StatusCode::BAD_REQUEST, "invalid_request").await;

    // The code: other client, other redirect URI — each spends it.
    let mut other = code_grant(&code);
    other["client_id"] = json!("other_app");
    other["client_secret"] = json!("another very secret key");
    rfc_error(
        token(&app, &other).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    let code = code_for(&app, &mut b).await;
    let mut moved = code_grant(&code);
    moved["redirect_uri"] = json!("http://127.0.0.1:5000/callback/");
    rfc_error(
        token(&app, &moved).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;

    // Used twice: the second use fails and revokes what the first issued.
    let code = code_for(&app, &mut b).await;
    let first: Value = token(&app, &code_grant(&code)).await.json().await.unwrap();
    assert!(first["access_token"].is_string(), "{first}");
    rfc_error(
        token(&app, &code_grant(&code)).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    let access = first["access_token"].as_str().unwrap();
    rfc_error(
        userinfo(&app, access).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;

    // Expired.
    let code = code_for(&app, &mut b).await;
    app.clock.advance(std::time::Duration::from_secs(61));
    rfc_error(
        token(&app, &code_grant(&code)).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;

    // A refresh token from another client, then a spent one (reuse revokes the grant).
    let code = code_for(&app, &mut b).await;
    let tokens: Value = token(&app, &code_grant(&code)).await.json().await.unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let stolen = json!({"grant_type": "refresh_token", "refresh_token": refresh,
                        "client_id": "other_app", "client_secret": "another very secret key"});
    rfc_error(
        token(&app, &stolen).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    let own = json!({"grant_type": "refresh_token", "refresh_token": refresh,
                     "client_id": CLIENT, "client_secret": SECRET});
    let next: Value = token(&app, &own).await.json().await.unwrap();
    assert!(
        next["access_token"].is_string(),
        "the stolen attempt did not burn it: {next}"
    );
    let wider = json!({"grant_type": "refresh_token", "refresh_token": next["refresh_token"],
                       "scope": "openid email user", "client_id": CLIENT, "client_secret": SECRET});
    rfc_error(
        token(&app, &wider).await,
        StatusCode::BAD_REQUEST,
        "invalid_scope",
    )
    .await;
    rfc_error(
        token(&app, &own).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    let after_reuse = next["access_token"].as_str().unwrap();
    rfc_error(
        userinfo(&app, after_reuse).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;

    // Userinfo: never a token in the URL; a missing or made-up one is invalid_token.
    let resp = app
        .client
        .get(app.url(&format!("/oauth/userinfo?access_token={after_reuse}")))
        .send()
        .await
        .unwrap();
    rfc_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
    let resp = app
        .client
        .get(app.url("/oauth/userinfo"))
        .send()
        .await
        .unwrap();
    rfc_error(resp, StatusCode::UNAUTHORIZED, "invalid_token").await;
    rfc_error(
        userinfo(&app, "sga_made_up").await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    // Introspection needs a confidential client.
    let resp = app
        .client
        .post(app.url("/oauth/introspect"))
        .form(&[("token", after_reuse), ("client_id", PUBLIC_CLIENT)])
        .send()
        .await
        .unwrap();
    rfc_error(resp, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

#[tokio::test]
async fn a_public_client_uses_pkce_and_a_wrong_verifier_gets_nothing() {
    let app = server(Backend::Sqlite).await;
    let user = app.create_user().await;
    let mut b = Browser::new(&app, "PKCE");
    sign_in(&mut b, &user, "/").await;
    let verifier = "a-verifier-of-forty-three-characters-or-more-000";
    let challenge = {
        use base64::Engine;
        use sha2::Digest;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier))
    };
    let path = authorize_path(&[
        ("response_type", "code"),
        ("client_id", PUBLIC_CLIENT),
        ("redirect_uri", "http://localhost:3000/cb"),
        ("scope", "openid profile"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
        ("nonce", "n-123"),
    ]);
    let grant = |code: &str, verifier: Option<&str>| {
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", "http://localhost:3000/cb".to_owned()),
            ("client_id", PUBLIC_CLIENT.to_owned()),
        ];
        if let Some(v) = verifier {
            form.push(("code_verifier", v.to_owned()));
        }
        app.client.post(app.url("/oauth/token")).form(&form).send()
    };
    let c = consent_code(&mut b, &path).await;
    rfc_error(
        grant(&c, None).await.unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    let c = consent_code(&mut b, &path).await;
    rfc_error(
        grant(&c, Some("not-the-verifier-at-all-but-long-enough-0000"))
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;
    let c = consent_code(&mut b, &path).await;
    let resp = grant(&c, Some(verifier)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let tokens: Value = resp.json().await.unwrap();
    // The id_token carries the nonce and verifies against the published key.
    let id_token = tokens["id_token"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(id_token).unwrap();
    // OIDC Core §15.1: RS256 unless the client registered another algorithm.
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    let claims = crate::openid_provider::verified_claims(&app, id_token, PUBLIC_CLIENT).await;
    assert_eq!(claims["nonce"], "n-123");
    assert_eq!(claims["sub"], user.id);
}

/// Regressions found in review: each of these once issued or kept something it must not.
#[tokio::test]
async fn review_regressions_of_the_authorization_server() {
    let app = server(Backend::Postgres).await;
    let user = app.create_user().await;
    let mut b = Browser::new(&app, "Regressions");
    sign_in(&mut b, &user, "/").await;
    let scoped = authorize_path(&[
        ("response_type", "code"),
        ("client_id", CLIENT),
        ("redirect_uri", REDIRECT),
        ("scope", "openid profile email"),
    ]);

    // Two concurrent exchanges of one code: whatever the first got is revoked.
    let code = consent_code(&mut b, &scoped).await;
    let grant = code_grant(&code);
    let (one, two) = tokio::join!(token(&app, &grant), token(&app, &grant));
    let mut issued = Vec::new();
    for resp in [one, two] {
        if resp.status() == StatusCode::OK {
            let body: Value = resp.json().await.unwrap();
            issued.push(body["access_token"].as_str().unwrap().to_owned());
        } else {
            rfc_error(resp, StatusCode::BAD_REQUEST, "invalid_grant").await;
        }
    }
    assert!(issued.len() <= 1);
    for access in &issued {
        rfc_error(
            userinfo(&app, access).await,
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        )
        .await;
    }

    // A refresh may narrow the scope, and the new token is held to it.
    let code = consent_code(&mut b, &scoped).await;
    let tokens: Value = token(&app, &code_grant(&code)).await.json().await.unwrap();
    let narrow: Value = token(
        &app,
        &json!({"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                "scope": "openid", "client_id": CLIENT, "client_secret": SECRET}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(narrow["scope"], "openid");
    let me: Value = userinfo(&app, narrow["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        me,
        json!({"sub": user.id}),
        "no profile or email beyond the scope"
    );

    // redirect_uri left out of a plain OAuth request (one is registered): not required
    // at the token endpoint either. (An OpenID request must name it.)
    let code = consent_code(
        &mut b,
        &authorize_path(&[
            ("response_type", "code"),
            ("client_id", CLIENT),
            ("scope", "profile"),
        ]),
    )
    .await;
    let mut grant = code_grant(&code);
    grant.as_object_mut().unwrap().remove("redirect_uri");
    assert_eq!(token(&app, &grant).await.status(), StatusCode::OK);

    // A code_challenge without its method (RFC 7636's default is `plain`) is refused.
    let seen = b
        .get(&format!("{}&code_challenge={}", scoped, "a".repeat(43)))
        .await;
    assert_eq!(query(&seen.location().unwrap())["error"], "invalid_request");

    // Deauthorizing drops codes not yet exchanged.
    let pending = consent_code(&mut b, &scoped).await;
    let csrf = page_token(&b.get("/manage-apps").await.body);
    b.request(
        Method::POST,
        "/oauth/deauthorize",
        Some(Body::Form(&[("client_id", CLIENT), ("csrfToken", &csrf)])),
        &[],
    )
    .await;
    rfc_error(
        token(&app, &code_grant(&pending)).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    )
    .await;

    // A password reset revokes what the authorization server issued for the account.
    let code = consent_code(&mut b, &scoped).await;
    let tokens: Value = token(&app, &code_grant(&code)).await.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(userinfo(&app, access).await.status(), StatusCode::OK);
    let resp = app
        .post_json("/v1/auth/password/reset", &json!({"email": user.email}))
        .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let mail = app.wait_for_mails(1).await.remove(0);
    let reset = crate::helpers::reset_token_in(&mail);
    let resp = app
        .post_json(
            "/v1/auth/password/reset/confirm",
            &json!({"token": reset, "new_password": "saffron beacon tundra 71",
                    "new_password_confirm": "saffron beacon tundra 71"}),
        )
        .await;
    assert!(resp.status().is_success());
    rfc_error(
        userinfo(&app, access).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
    // …and the browser's sign-in at the server is over too.
    let seen = b.get(&scoped).await;
    assert!(
        seen.location().unwrap().contains("/api/auth/signin"),
        "asked to sign in again"
    );
}
