//! The OpenAPI document: every documented route group in one service.
//!
//! Operations take the application state through `Data`, so the spec can be generated
//! without a running server (`sessiongate openapi`), and the served spec is byte for byte
//! the one checked in under `openapi/`.

use poem_openapi::OpenApiService;

/// All documented operations.
pub type Apis = (
    crate::v1::auth::AuthApi,
    crate::v1::users::UsersApi,
    crate::bff::NextAuthApi,
    crate::bff::sessions::SessionsApi,
    crate::bff::logout::LogoutApi,
    crate::oauth::OAuthApi,
    crate::oauth::OpLogoutApi,
);

/// The service that routes and documents the API.
pub fn service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            crate::v1::auth::AuthApi,
            crate::v1::users::UsersApi,
            crate::bff::NextAuthApi,
            crate::bff::sessions::SessionsApi,
            crate::bff::logout::LogoutApi,
            crate::oauth::OAuthApi,
            crate::oauth::OpLogoutApi,
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
