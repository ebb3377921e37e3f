//! The OpenAPI-described HTTP API: the bundled auth backend under `/v1`.
//!
//! Operations take the application state through `Data`, so the spec can be generated
//! without a running server (`sessiongate openapi`), and the served spec is byte for byte
//! the one checked in under `openapi/`.

pub mod auth;
pub mod models;
pub mod security;
pub mod users;

use poem_openapi::OpenApiService;

/// All documented operations.
pub type Apis = (
    auth::AuthApi,
    users::UsersApi,
    crate::bff::api::NextAuthApi,
    crate::bff::sessions::SessionsApi,
    crate::oauth::api::OAuthApi,
);

/// The service that routes and documents the API.
pub fn service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            auth::AuthApi,
            users::UsersApi,
            crate::bff::api::NextAuthApi,
            crate::bff::sessions::SessionsApi,
            crate::oauth::api::OAuthApi,
        ),
        "sessiongate",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Backend-for-frontend session proxy and bundled auth API. Every error has the \
         shape `{\"error\", \"message\", \"code\"}`, plus `details` (field → messages) \
         on validation errors.",
    )
}

/// The spec as JSON, as `sessiongate openapi` prints it and `openapi/` holds it.
pub fn spec_json() -> String {
    format!("{}\n", service().spec())
}
