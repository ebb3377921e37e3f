//! The checked-in spec is what the code generates, and the server serves it.

use reqwest::StatusCode;

use crate::helpers::{spawn_app, Backend};

const CHECKED_IN: &str = include_str!("../../openapi/sessiongate.json");

#[test]
fn checked_in_spec_matches_the_code() {
    let generated = sessiongate::openapi::spec_json();
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

/// A JSON object with a repeated key (two `400` responses, say) parses in serde_json
/// (last wins) but breaks YAML-based tools such as openapi-typescript.
#[test]
fn spec_has_no_repeated_keys() {
    use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
    struct Checked;
    impl<'de> serde::Deserialize<'de> for Checked {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(CheckedVisitor)
        }
    }
    struct CheckedVisitor;
    impl<'de> Visitor<'de> for CheckedVisitor {
        type Value = Checked;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                if !seen.insert(key.clone()) {
                    return Err(serde::de::Error::custom(format!("repeated key `{key}`")));
                }
                map.next_value::<Checked>()?;
            }
            Ok(Checked)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
            while seq.next_element::<Checked>()?.is_some() {}
            Ok(Checked)
        }
        fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_unit<E>(self) -> Result<Checked, E> {
            Ok(Checked)
        }
    }
    if let Err(e) = serde_json::from_str::<Checked>(CHECKED_IN) {
        panic!("openapi/sessiongate.json: {e}");
    }
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
