//! The proxied APIs' OpenAPI documents served by sessiongate (`openapi` of a route):
//! fetched from the upstream or a file, rewritten for the session cookie, kept when a
//! later fetch fails (and `/readyz` says so), never proxied.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use poem::web::Data;
use poem::{handler, EndpointExt, IntoResponse, Response, Route};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sessiongate::config::ProxyRoute;

use crate::helpers::tempdir::TempDir;
use crate::helpers::{spawn_app_with, Backend, TestApp};

/// The document FastAPI writes for the seeds' backend: Bearer on `/items`, a public
/// `/health`.
fn fastapi_spec() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Items", "version": "0.1.0"},
        "paths": {
            "/items": {
                "get": {"operationId": "list_items_items_get", "security": [{"HTTPBearer": []}],
                    "responses": {"200": {"description": "Successful Response"}}},
                "post": {"operationId": "create_item_items_post", "security": [{"HTTPBearer": []}],
                    "requestBody": {"required": true, "content": {"application/json":
                        {"schema": {"$ref": "#/components/schemas/Item"}}}},
                    "responses": {"201": {"description": "Successful Response"}}}
            },
            "/health": {"get": {"operationId": "health_health_get",
                "responses": {"200": {"description": "Successful Response"}}}}
        },
        "components": {
            "schemas": {"Item": {"title": "Item", "type": "object",
                "properties": {"name": {"type": "string"}}, "required": ["name"]}},
            "securitySchemes": {"HTTPBearer": {"type": "http", "scheme": "bearer"}}
        }
    })
}

#[handler]
fn spec(down: Data<&Arc<AtomicBool>>) -> Response {
    if down.load(Ordering::Relaxed) {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    poem::web::Json(fastapi_spec()).into_response()
}

#[handler]
fn garbage() -> &'static str {
    "<html>not a spec</html>"
}

/// Over the 4 MiB a document may have.
#[handler]
fn huge() -> String {
    format!(
        "{{\"openapi\": \"3.1.0\", \"x\": \"{}\"}}",
        "a".repeat(5 << 20)
    )
}

/// An upstream serving its document at `/openapi.json` (answering 500 while `down`).
async fn upstream() -> (String, Arc<AtomicBool>) {
    let down = Arc::new(AtomicBool::new(false));
    let app = Route::new()
        .at("/openapi.json", spec)
        .at("/garbage.json", garbage)
        .at("/huge.json", huge)
        .data(Arc::clone(&down));
    let base = crate::stand_ins::serve(app).await;
    (base, down)
}

/// `path` once it answers something else than 503 (the first fetch runs in the
/// background), within 3 s.
async fn settled(app: &TestApp, path: &str) -> reqwest::Response {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let resp = app.get(path).await;
        if resp.status() != StatusCode::SERVICE_UNAVAILABLE
            || tokio::time::Instant::now() > deadline
        {
            return resp;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn each_routes_document_is_served_rewritten_and_the_last_good_copy_is_kept() {
    let (base, down) = upstream().await;
    let dir = TempDir::new();
    let yaml = dir.0.join("files.yaml");
    std::fs::write(
        &yaml,
        "openapi: 3.0.3\ninfo: {title: Files, version: '1'}\nsecurity: [{bearer: []}]\n\
         paths:\n  /files:\n    get:\n      operationId: listFiles\n      responses: {'200': {description: ok}}\n",
    )
    .unwrap();
    let yaml = yaml.display().to_string();
    let app = spawn_app_with(Backend::Sqlite, move |s| {
        s.proxy.openapi_refresh = Duration::from_millis(200);
        let route = |prefix: &str, openapi: &str| ProxyRoute {
            prefix: prefix.into(),
            upstream: base.clone(),
            openapi: Some(openapi.into()),
            ..ProxyRoute::default()
        };
        s.proxy.routes = vec![
            route("/api/shop", "/openapi.json"),
            ProxyRoute {
                name: Some("files".into()),
                ..route("/api/storage", &format!("file:{yaml}"))
            },
            route("/api/broken", "/garbage.json"),
            route("/api/huge", "/huge.json"),
        ];
    })
    .await;

    // Swagger UI offers each proxied API; a first request for some other page under
    // /docs does not become the page.
    assert_eq!(
        app.get("/docs/nothing-here").await.status(),
        StatusCode::NOT_FOUND
    );
    let docs = app.get("/docs/").await;
    assert_eq!(docs.status(), StatusCode::OK);
    let page = docs.text().await.unwrap();
    assert!(page
        .contains(r#"<option value="/api/openapi/shop.json">shop (through the proxy)</option>"#));
    assert!(page.contains("requestInterceptor: sgIntercept"));

    let resp = settled(&app, "/api/openapi/shop.json").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let shop: Value = resp.json().await.unwrap();
    assert_eq!(
        shop["servers"],
        json!([{"url": crate::helpers::PUBLIC_URL}])
    );
    let list = &shop["paths"]["/api/shop/items"]["get"];
    assert_eq!(
        list["operationId"], "list_items_items_get",
        "operation ids are kept"
    );
    assert_eq!(list["security"], json!([{"sessionCookie": []}]));
    let create = &shop["paths"]["/api/shop/items"]["post"];
    assert_eq!(create["parameters"][0]["name"], "X-CSRF");
    assert_eq!(create["parameters"][0]["required"], true);
    assert_eq!(
        create["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Item"
    );
    assert!(shop["paths"]["/api/shop/health"]["get"]
        .get("security")
        .is_none());
    assert_eq!(
        shop["components"]["securitySchemes"],
        json!({"sessionCookie": {"type": "apiKey", "in": "cookie", "name": "sessiongate",
            "description": shop["components"]["securitySchemes"]["sessionCookie"]["description"]}})
    );

    // A YAML file, with global security.
    let files: Value = settled(&app, "/api/openapi/files.json")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(files["security"], json!([{"sessionCookie": []}]));
    assert!(files["paths"]["/api/storage/files"]["get"].is_object());

    // All of them as one; an unknown name is 404; a document that is garbage is 503,
    // and `/readyz` says which is degraded while staying ready.
    let all: Value = app.get("/api/openapi.json").await.json().await.unwrap();
    assert!(all["paths"]["/api/shop/items"].is_object());
    assert!(all["paths"]["/api/storage/files"].is_object());
    assert!(all["components"]["schemas"]["shop.Item"].is_object());
    assert_eq!(
        app.get("/api/openapi/nope.json").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/api/openapi/broken.json").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    // Both failures are said, without the upstream's address (only the log has it).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let ready = loop {
        let ready = app.get("/readyz").await;
        assert_eq!(ready.status(), StatusCode::OK, "degraded is still ready");
        let ready: Value = ready.json().await.unwrap();
        let said = ready["checks"]["openapi"]["huge"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        if !said.contains("not fetched") || tokio::time::Instant::now() > deadline {
            break ready;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ready["status"], "degraded");
    assert_eq!(ready["checks"]["openapi"]["shop"], "ok");
    let broken = ready["checks"]["openapi"]["broken"].as_str().unwrap();
    assert!(
        broken.starts_with("degraded: not an OpenAPI 3 document"),
        "{ready}"
    );
    assert_eq!(
        ready["checks"]["openapi"]["huge"], "degraded: larger than 4194304 bytes",
        "{ready}"
    );
    assert!(!ready.to_string().contains("127.0.0.1"), "{ready}");
    assert_eq!(
        app.get("/api/openapi/huge.json").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );

    // The upstream's document goes away: the last good copy is still served.
    down.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let ready: Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(
        ready["checks"]["openapi"]["shop"], "degraded: answered 500 Internal Server Error",
        "{ready}"
    );
    let kept = app.get("/api/openapi/shop.json").await;
    assert_eq!(kept.status(), StatusCode::OK);
    assert_eq!(kept.json::<Value>().await.unwrap(), shop);
    // Never proxied: the proxy itself still answers its own way.
    let proxied = app.get("/api/shop/items").await;
    assert_eq!(proxied.status(), StatusCode::UNAUTHORIZED);
}

#[test]
fn a_document_path_that_leaves_the_upstream_is_refused_at_startup() {
    let dir = TempDir::new();
    let file = dir.0.join("routes.toml");
    let route = |prefix: &str, upstream: &str, openapi: &str| {
        format!(
            "[[proxy.routes]]\nprefix = \"{prefix}\"\nupstream = \"{upstream}\"\nopenapi = \"{openapi}\"\n"
        )
    };
    let config = [
        route("/api/a", "https://a.example", "//evil.example/openapi.json"),
        route("/api/b", "https://b.example", "/../../admin/openapi.json"),
        route("/api/c", "bundled", "/openapi.json"),
        route("/api/x/d", "https://d.example", "/openapi.json"),
        route("/api/y/d", "https://e.example", "/openapi.json"),
        route(
            "/api/f",
            "https://f.example/svc",
            "/%2e%2e/admin/openapi.json",
        ),
        route(
            "/api/g",
            "https://g.example",
            "https://evil.example/openapi.json",
        ),
    ]
    .concat();
    std::fs::write(&file, config).unwrap();
    let out = crate::helpers::sessiongate()
        .env(
            "SESSIONGATE_DATABASE__URL",
            format!("sqlite://{}/docs.db", dir.0.display()),
        )
        .args(["--config", file.to_str().unwrap(), "migrate"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for line in [
        "proxy.routes[0].openapi: `//evil.example/openapi.json` must be a path on the upstream",
        "proxy.routes[1].openapi: `/../../admin/openapi.json` must be a path on the upstream",
        "proxy.routes[2].openapi: the bundled API's document is sessiongate's own /openapi.json",
        "proxy.routes[4].name: `d` names another route's OpenAPI document too",
        "proxy.routes[5].openapi: `/%2e%2e/admin/openapi.json` must be a path on the upstream",
        "proxy.routes[6].openapi: `https://evil.example/openapi.json` must be a path on the upstream",
    ] {
        assert!(stderr.contains(line), "missing `{line}` in:\n{stderr}");
    }
}
