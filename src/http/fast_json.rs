//! A JSON answer written straight from its `Serialize`. poem-openapi's `Json` first builds
//! a `serde_json::Value` of the whole answer and then writes that; for the answers every
//! page load asks for (`GET /api/auth/session`) the detour is a measurable part of the
//! request. The documented schema is the type's own, as with `Json`.

use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use serde::Serialize;

pub struct FastJson<T>(pub T);

const JSON: &str = "application/json; charset=utf-8";

impl<T: Type> Payload for FastJson<T> {
    const CONTENT_TYPE: &'static str = JSON;

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Serialize + Send> IntoResponse for FastJson<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(body) => Response::builder().content_type(JSON).body(body),
            Err(e) => {
                tracing::error!(error = %e, "an answer could not be written as JSON");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }
}
