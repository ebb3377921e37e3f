//! Password change and reset, against both databases and real Redis.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_error, spawn_app, spawn_app_with, Backend, TestApp};

const NEW_PASSWORD: &str = "violet tractor umbrella 93";

async fn request_reset(app: &TestApp, email: &str) -> Value {
    let resp = app
        .post_json("/v1/auth/password/reset", &json!({"email": email}))
        .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    resp.json().await.unwrap()
}

async fn confirm_reset(app: &TestApp, token: &str, password: &str) -> reqwest::Response {
    app.post_json(
        "/v1/auth/password/reset/confirm",
        &json!({"token": token, "new_password": password, "new_password_confirm": password}),
    )
    .await
}

async fn change_signs_out_other_devices(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.create_user().await; // sign-in A (registration)
    let other: Value = app
        .login(&user.username, &user.password)
        .await
        .json()
        .await
        .unwrap(); // sign-in B
    let access_b = other["access_token"].as_str().unwrap();
    let refresh_b = other["refresh_token"].as_str().unwrap();

    // refusals change nothing
    let resp = app
        .change_password(
            access_b,
            &json!({"old_password": "wrong password!", "new_password": NEW_PASSWORD}),
        )
        .await;
    let body = assert_error(resp, StatusCode::BAD_REQUEST, "validation_error").await;
    assert_eq!(
        body["details"]["old_password"][0],
        "The current password is incorrect."
    );
    let resp = app
        .change_password(
            access_b,
            &json!({"old_password": user.password, "new_password": user.password}),
        )
        .await;
    let body = assert_error(resp, StatusCode::BAD_REQUEST, "validation_error").await;
    assert_eq!(
        body["details"]["new_password"][0],
        "The new password must differ from the current one."
    );
    let resp = app
        .change_password(
            access_b,
            &json!({"old_password": user.password, "new_password": "password1"}),
        )
        .await;
    let body = assert_error(resp, StatusCode::BAD_REQUEST, "validation_error").await;
    assert!(body["details"]["new_password"][0]
        .as_str()
        .unwrap()
        .starts_with("Password is too weak."));
    let resp = app
        .change_password(
            access_b,
            &json!({"old_password": user.password, "new_password": NEW_PASSWORD, "new_password_confirm": "something else"}),
        )
        .await;
    let body = assert_error(resp, StatusCode::BAD_REQUEST, "validation_error").await;
    assert_eq!(
        body["details"]["new_password_confirm"][0],
        "The two passwords do not match."
    );
    assert_eq!(
        app.refresh(&user.refresh_token).await.status(),
        StatusCode::OK,
        "A still alive"
    );

    // the change from B
    let resp = app
        .change_password(
            access_b,
            &json!({"old_password": user.password, "new_password": NEW_PASSWORD, "new_password_confirm": NEW_PASSWORD}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["message"],
        "Password changed successfully."
    );

    assert_error(
        app.login(&user.username, &user.password).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    assert_eq!(
        app.login(&user.username, NEW_PASSWORD).await.status(),
        StatusCode::OK
    );
    // A (whose refresh token rotated above) is signed out; B keeps working
    assert_error(
        app.me(&user.access_token).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    assert_eq!(app.me(access_b).await.status(), StatusCode::OK);
    assert_eq!(app.refresh(refresh_b).await.status(), StatusCode::OK);
}

async fn reset_by_mailed_link_works_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.create_user().await;
    let bystander = app.create_user().await;

    let unknown = request_reset(&app, "nobody@example.com").await;
    let known = request_reset(&app, &user.email.to_uppercase()).await;
    assert_eq!(
        unknown, known,
        "the answer does not reveal whether the account exists"
    );
    assert_eq!(
        known["message"],
        "If an account exists for this email, a password reset link has been sent."
    );

    let mails = app.wait_for_mails(1).await;
    assert_eq!(mails.len(), 1, "no mail for the unknown address");
    let mail = &mails[0];
    assert!(mail.contains(&format!("To: {}", user.email)), "{mail}");
    assert!(mail.contains("Subject: Reset your password"));
    assert!(mail.contains("/reset-password?token="), "{mail}");
    let token = crate::helpers::reset_token_in(mail);
    assert_eq!(token.len(), 43);

    // bad tokens: malformed, truncated, altered (last character changed), extended
    let other_last = if token.ends_with('A') { 'B' } else { 'A' };
    for bad in [
        "",
        "not a token",
        &token[..20],
        &format!("{}{other_last}", &token[..42]),
        &format!("{token}x"),
    ] {
        let resp = confirm_reset(&app, bad, NEW_PASSWORD).await;
        assert_error(resp, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    }
    // a refused password does not spend the token
    let resp = confirm_reset(&app, &token, "password1").await;
    assert_error(resp, StatusCode::BAD_REQUEST, "validation_error").await;
    let resp = app
        .post_json(
            "/v1/auth/password/reset/confirm",
            &json!({"token": token, "new_password": NEW_PASSWORD, "new_password_confirm": "different"}),
        )
        .await;
    assert_error(resp, StatusCode::BAD_REQUEST, "validation_error").await;
    let resp = confirm_reset(&app, &token, &user.password).await;
    let body = assert_error(resp, StatusCode::BAD_REQUEST, "validation_error").await;
    assert_eq!(
        body["details"]["new_password"][0],
        "The new password must differ from the current one."
    );

    // the real reset
    let resp = confirm_reset(&app, &token, NEW_PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["message"],
        "Password reset successful."
    );
    assert_eq!(
        app.login(&user.username, NEW_PASSWORD).await.status(),
        StatusCode::OK
    );
    assert_error(
        app.login(&user.username, &user.password).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;
    // every earlier sign-in is revoked
    assert_error(
        app.refresh(&user.refresh_token).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    assert_error(
        app.me(&user.access_token).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    )
    .await;
    // once and only once
    let resp = confirm_reset(&app, &token, "another fine passphrase 77").await;
    assert_error(resp, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    assert_eq!(
        app.login(&user.username, NEW_PASSWORD).await.status(),
        StatusCode::OK
    );
    // the bystander is untouched
    assert_eq!(
        app.login(&bystander.username, &bystander.password)
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        app.refresh(&bystander.refresh_token).await.status(),
        StatusCode::OK
    );
}

async fn expired_reset_tokens_are_refused(backend: Backend) {
    // A zero lifetime: every token is already expired when mailed.
    let app = spawn_app_with(backend, |s| {
        s.auth.reset_token_ttl = std::time::Duration::ZERO
    })
    .await;
    let user = app.create_user().await;
    request_reset(&app, &user.email).await;
    let token = crate::helpers::reset_token_in(&app.wait_for_mails(1).await[0]);
    let resp = confirm_reset(&app, &token, NEW_PASSWORD).await;
    assert_error(resp, StatusCode::UNAUTHORIZED, "unauthenticated").await;
    assert_eq!(
        app.login(&user.username, &user.password).await.status(),
        StatusCode::OK
    );
}

async fn header_injection_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    for email in [
        "victim@example.com\r\nBcc: all@evil.example",
        "victim@example.com\nBcc:x@evil.example",
    ] {
        let resp = app
            .post_json("/v1/auth/password/reset", &json!({"email": email}))
            .await;
        let body = assert_error(resp, StatusCode::BAD_REQUEST, "validation_error").await;
        assert_eq!(body["details"]["email"][0], "Enter a valid email address.");
    }
    let resp = app
        .register(&json!({
            "username": "mallory", "email": "mallory@example.com", "password": NEW_PASSWORD,
            "first_name": "Mal\r\nBcc: all@evil.example"
        }))
        .await;
    let body = assert_error(resp, StatusCode::BAD_REQUEST, "validation_error").await;
    assert!(body["details"]["first_name"].is_array());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(app.mails().is_empty(), "nothing was mailed");
}

crate::both_databases!(
    change_signs_out_other_devices,
    reset_by_mailed_link_works_once,
    expired_reset_tokens_are_refused,
    header_injection_is_refused,
);
