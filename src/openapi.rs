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
    crate::v1::passkeys::PasskeysApi,
    crate::bff::passkeys::PasskeySignInApi,
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
            crate::v1::passkeys::PasskeysApi,
            crate::bff::passkeys::PasskeySignInApi,
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

/// Swagger UI at `/docs`: poem-openapi's page, with a selector between sessiongate's own
/// API and each proxied API that names its document (`names`, served at
/// `/api/openapi/{name}.json`), and a request interceptor that sends `csrf_header` on
/// unsafe methods, so "Try it out" works through the proxy with the session cookie.
pub fn docs(
    swagger_ui: impl poem::Endpoint + 'static,
    names: &[String],
    csrf_header: &str,
) -> impl poem::Endpoint + 'static {
    use poem::{Endpoint, EndpointExt, IntoResponse};
    let inner = std::sync::Arc::new(swagger_ui.map_to_response());
    let page = std::sync::Arc::new(tokio::sync::OnceCell::<String>::new());
    let picker = picker(names, csrf_header);
    poem::endpoint::make(move |req: poem::Request| {
        let (inner, page, picker) = (inner.clone(), page.clone(), picker.clone());
        async move {
            if req.uri().path().ends_with("oauth-receiver.html") {
                return inner.get_response(req).await;
            }
            if let Some(html) = page.get() {
                return poem::web::Html(html.clone()).into_response();
            }
            // Only the page itself (not a 404 of some other path) is kept.
            let original = inner.get_response(req).await;
            if original.status() != poem::http::StatusCode::OK {
                return original;
            }
            let text = original.into_body().into_string().await.unwrap_or_default();
            let html = text.replacen("<div id=\"ui\"></div>", &picker, 1).replacen(
                "spec: spec,",
                "spec: spec,\n        requestInterceptor: sgIntercept,",
                1,
            );
            let html = page.get_or_init(|| async { html }).await;
            poem::web::Html(html.clone()).into_response()
        }
    })
}

/// The selector and the interceptor, put where the page's `#ui` is.
fn picker(names: &[String], csrf_header: &str) -> String {
    let options: String = names
        .iter()
        .map(|n| {
            // Names are validated (letters, digits, - and _); escaped all the same.
            let n = n
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;");
            format!("<option value=\"/api/openapi/{n}.json\">{n} (through the proxy)</option>")
        })
        .collect();
    let header = serde_json::to_string(csrf_header).unwrap_or_else(|_| "\"X-CSRF\"".into());
    format!(
        r##"<div id="sg-apis" style="padding:10px 20px;font-family:sans-serif;{hide}">
  <label>API: <select id="sg-api"><option value="">sessiongate</option>{options}</select></label>
</div>
<div id="ui"></div>
<script>
  function sgIntercept(r) {{
    var m = (r.method || "GET").toUpperCase();
    if (["GET", "HEAD", "OPTIONS"].indexOf(m) < 0) {{ r.headers[{header}] = "1"; }}
    r.credentials = "same-origin";
    return r;
  }}
  document.getElementById("sg-api").addEventListener("change", function (e) {{
    var shown = {{ dom_id: "#ui", deepLinking: true, requestInterceptor: sgIntercept }};
    if (e.target.value) {{ shown.url = e.target.value; }} else {{ shown.spec = spec; }}
    SwaggerUIBundle(shown);
  }});
</script>"##,
        hide = if names.is_empty() { "display:none" } else { "" },
    )
}
