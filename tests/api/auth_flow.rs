//! The `/v1` journey a client takes, against both databases.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_error, spawn_app, Backend, TestUser};

async fn full_journey(backend: Backend) {
    let app = spawn_app(backend).await;
    let (username, email, password) = TestUser::random();

    // register
    let resp = app
        .register(&json!({
            "username": username, "email": email, "password": password,
            "first_name": "Ada", "last_name": "Lovelace"
        }))
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["message"], "User registered successfully");
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["user"]["username"], username.as_str());
    assert_eq!(body["user"]["first_name"], "Ada");
    assert!(body["user"].get("password_hash").is_none());
    let user_id = body["user"]["id"].as_str().unwrap().to_owned();

    // login with JSON (by email, other case) and with the OAuth2 form (by username)
    let resp = app.login(&email.to_uppercase(), &password).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let json_login: Value = resp.json().await.unwrap();
    assert_eq!(json_login["user"]["id"], user_id.as_str());
    let resp = app.login_form(&username, &password).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let form_login: Value = resp.json().await.unwrap();
    assert_eq!(form_login["token_type"], "bearer");
    let access = form_login["access_token"].as_str().unwrap().to_owned();
    let refresh = form_login["refresh_token"].as_str().unwrap().to_owned();

    // me, both spellings
    for path in ["/v1/auth/me", "/v1/users/me"] {
        let resp = app.get_bearer(path, &access).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let me: Value = resp.json().await.unwrap();
        assert_eq!(me["id"], user_id.as_str());
        assert_eq!(me["email"], email.as_str());
    }

    // patch profile: a new email needs the current password, and nothing changes without it
    let change = json!({"first_name": "Augusta", "email": format!("new.{email}")});
    let body = assert_error(
        app.patch_me(&access, &change).await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    )
    .await;
    assert_eq!(
        body["details"]["current_password"][0],
        "Your current password is required to change the email."
    );
    let wrong = json!({"first_name": "Augusta", "email": format!("new.{email}"), "current_password": "not it at all"});
    let body = assert_error(
        app.patch_me(&access, &wrong).await,
        StatusCode::BAD_REQUEST,
        "validation_error",
    )
    .await;
    assert_eq!(
        body["details"]["current_password"][0],
        "The current password is incorrect."
    );
    let me: Value = app.me(&access).await.json().await.unwrap();
    assert_eq!(
        (me["first_name"].as_str(), me["email"].as_str()),
        (Some("Ada"), Some(email.as_str()))
    );
    let resp = app
        .patch_me(
            &access,
            &json!({"first_name": "Augusta", "email": format!("new.{email}"), "current_password": password}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let patched: Value = resp.json().await.unwrap();
    assert_eq!(patched["message"], "Profile updated successfully.");
    assert_eq!(patched["first_name"], "Augusta");
    assert_eq!(patched["last_name"], "Lovelace");
    assert_eq!(patched["email"], format!("new.{email}"));
    let me: Value = app.me(&access).await.json().await.unwrap();
    assert_eq!(me["first_name"], "Augusta");

    // refresh rotates
    let resp = app.refresh(&refresh).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let rotated: Value = resp.json().await.unwrap();
    let refresh2 = rotated["refresh_token"].as_str().unwrap().to_owned();
    let access2 = rotated["access_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh2, refresh);
    assert_eq!(app.me(&access2).await.status(), StatusCode::OK);

    // reusing the spent token revokes the whole family: its successor and its access
    // tokens die too, while the other sign-in (the JSON login) lives on
    assert_error(
        app.refresh(&refresh).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    assert_error(
        app.refresh(&refresh2).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    assert_error(
        app.me(&access2).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    let other_access = json_login["access_token"].as_str().unwrap();
    assert_eq!(app.me(other_access).await.status(), StatusCode::OK);

    // logout ends the other sign-in
    let other_refresh = json_login["refresh_token"].as_str().unwrap();
    let resp = app.logout(other_refresh).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_error(
        app.refresh(other_refresh).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    assert_error(
        app.me(other_access).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;

    // and the credentials still work for a new sign-in
    assert_eq!(
        app.login(&username, &password).await.status(),
        StatusCode::OK
    );
}

async fn taken_usernames_and_emails_conflict(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.create_user().await;
    let (other_name, other_email, other_password) = TestUser::random();

    for (username, email) in [
        (user.username.to_uppercase(), other_email.clone()),
        (other_name.clone(), user.email.to_lowercase()),
    ] {
        let resp = app
            .register(&json!({"username": username, "email": email, "password": other_password}))
            .await;
        let body = assert_error(resp, StatusCode::CONFLICT, "conflict").await;
        assert_eq!(body["error"], "Conflict");
        assert_eq!(body["message"], "Username or email already exists.");
    }
    // nothing was written: neither attempt can sign in
    assert_error(
        app.login(&other_name, &other_password).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_error(
        app.login(&other_email, &other_password).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;

    // a profile change onto someone else's email conflicts and changes nothing
    let second = app.create_user().await;
    let resp = app
        .patch_me(
            &second.access_token,
            &json!({"email": user.email, "first_name": "X", "current_password": second.password}),
        )
        .await;
    assert_error(resp, StatusCode::CONFLICT, "conflict").await;
    let me: Value = app.me(&second.access_token).await.json().await.unwrap();
    assert_eq!(me["email"], second.email.as_str());
    assert_eq!(me["first_name"], "");
}

async fn wrong_user_and_wrong_password_look_the_same(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.create_user().await;
    let wrong_password = app.login(&user.username, "not-the-password").await;
    let unknown_user = app.login("nobody_here", &user.password).await;
    let a = assert_error(
        wrong_password,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    let b = assert_error(
        unknown_user,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_eq!(a, b);
    assert_eq!(
        a,
        json!({"error": "Unauthorized", "message": "Invalid credentials.", "code": "invalid_credentials"})
    );
}

async fn validation_names_every_bad_field(backend: Backend) {
    let app = spawn_app(backend).await;
    let resp = app
        .register(&json!({"username": "x", "email": "not-an-email", "password": "short"}))
        .await;
    let body = assert_error(resp, StatusCode::BAD_REQUEST, "validation_error").await;
    assert_eq!(body["error"], "Validation Error");
    assert_eq!(
        body["details"]["username"][0],
        "Username must be 3 to 32 characters long."
    );
    assert_eq!(body["details"]["email"][0], "Enter a valid email address.");
    assert_eq!(
        body["details"]["password"][0],
        "Password must be at least 8 characters long."
    );

    let user = app.create_user().await;
    let resp = app
        .patch_me(
            &user.access_token,
            &json!({"username": "bad name!", "last_name": "ok"}),
        )
        .await;
    let body = assert_error(resp, StatusCode::BAD_REQUEST, "validation_error").await;
    assert!(body["details"]["username"].is_array());
    let me: Value = app.me(&user.access_token).await.json().await.unwrap();
    assert_eq!(me["last_name"], "", "a rejected patch changes nothing");
}

crate::both_databases!(
    full_journey,
    taken_usernames_and_emails_conflict,
    wrong_user_and_wrong_password_look_the_same,
    validation_names_every_bad_field,
);
