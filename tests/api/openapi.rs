//! The checked-in spec is what the code generates, and the server serves it.

use reqwest::StatusCode;

use crate::helpers::{spawn_app, Backend};

const CHECKED_IN: &str = include_str!("../../openapi/sessiongate.json");

#[test]
fn checked_in_spec_matches_the_code() {
    let generated = sessiongate::api::spec_json();
    assert!(
        generated == CHECKED_IN,
        "openapi/sessiongate.json is out of date; regenerate it with:\n    \
         cargo run -- openapi > openapi/sessiongate.json"
    );
}

#[test]
fn spec_documents_the_password_flow_and_error_statuses() {
    let spec: serde_json::Value = serde_json::from_str(CHECKED_IN).unwrap();
    let scheme = &spec["components"]["securitySchemes"]["OAuth2Password"];
    assert_eq!(scheme["type"], "oauth2");
    assert_eq!(
        scheme["flows"]["password"]["tokenUrl"],
        "/v1/auth/login/oauth"
    );
    let login = &spec["paths"]["/v1/auth/login"]["post"]["responses"];
    for status in ["200", "400", "401", "429", "500", "503"] {
        assert!(login.get(status).is_some(), "login documents {status}");
    }
    let form = &spec["paths"]["/v1/auth/login/oauth"]["post"]["requestBody"]["content"];
    assert!(form.get("application/x-www-form-urlencoded").is_some());
}

#[tokio::test]
async fn server_serves_the_spec_and_swagger_ui() {
    let app = spawn_app(Backend::Sqlite).await;
    let resp = app.get("/openapi.json").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.unwrap(), CHECKED_IN);
    let resp = app.get("/docs").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.text().await.unwrap().contains("swagger"));
}
