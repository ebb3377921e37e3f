//! An upstream's OpenAPI document (3.0 or 3.1) as it is true through sessiongate: served
//! from our public URL, its paths under the route's prefix, the session cookie instead of
//! the upstream's own security schemes, the anti-CSRF header on unsafe operations, and
//! the proxy's own error answers. Operation ids and `$ref`s are kept, so generated
//! clients name their methods as the upstream's would.

use serde_json::{json, Map, Value};

/// What the rewrite needs to know about the route and this server.
pub struct Through<'a> {
    /// `server.public_url`.
    pub public_url: &'a str,
    /// The route's prefix, e.g. `/api/items`.
    pub prefix: &'a str,
    /// Whether the route replaces its prefix by the upstream URL (else the upstream's
    /// paths already carry it).
    pub strip_prefix: bool,
    /// A public route: no cookie, no anti-CSRF header, no 401.
    pub public: bool,
    /// The session cookie's name.
    pub cookie: &'a str,
    /// `proxy.csrf_header`.
    pub csrf_header: &'a str,
}

/// The name of the cookie scheme in the rewritten document.
pub const COOKIE_SCHEME: &str = "sessionCookie";
/// The name of the proxy's error schema.
pub const ERROR_SCHEMA: &str = "SessiongateError";

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];
const UNSAFE: [&str; 4] = ["post", "put", "patch", "delete"];

/// The rewritten document, or why `spec` is not an OpenAPI 3 document.
pub fn rewrite(mut spec: Value, through: &Through<'_>) -> Result<Value, String> {
    let version = spec
        .get("openapi")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if !version.starts_with("3.") {
        return Err("not an OpenAPI 3 document (Swagger 2.0 is not taken)".into());
    }
    let root = spec
        .as_object_mut()
        .ok_or("the document is not a JSON object")?;
    let had_global_security = root
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty());
    root.insert("servers".into(), json!([{ "url": through.public_url }]));

    let paths = match root.remove("paths") {
        Some(Value::Object(paths)) => paths,
        None => Map::new(),
        Some(_) => return Err("`paths` is not an object".into()),
    };
    let mut rebased = Map::new();
    for (path, mut item) in paths {
        let path = if through.strip_prefix {
            format!("{}{}", through.prefix, if path == "/" { "" } else { &path })
        } else {
            path
        };
        if let Some(item) = item.as_object_mut() {
            // Every request goes to our public URL: no path or operation sends it elsewhere.
            item.remove("servers");
            for method in METHODS {
                if let Some(Value::Object(op)) = item.get_mut(method) {
                    op.remove("servers");
                    operation(op, method, had_global_security, through);
                }
            }
        }
        rebased.insert(if path.is_empty() { "/".into() } else { path }, item);
    }
    root.insert("paths".into(), Value::Object(rebased));

    if had_global_security && !through.public {
        root.insert("security".into(), json!([{ COOKIE_SCHEME: [] }]));
    } else {
        root.remove("security");
    }
    let components = root
        .entry("components")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or("`components` is not an object")?;
    let mut schemes = Map::new();
    if !through.public {
        schemes.insert(
            COOKIE_SCHEME.into(),
            json!({
                "type": "apiKey",
                "in": "cookie",
                "name": through.cookie,
                "description": "The session cookie sessiongate sets at sign-in (HttpOnly: the browser sends it; sessiongate sends the upstream its Bearer token).",
            }),
        );
    }
    components.insert("securitySchemes".into(), Value::Object(schemes));
    let schemas = components
        .entry("schemas")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or("`components.schemas` is not an object")?;
    schemas.insert(
        ERROR_SCHEMA.into(),
        json!({
            "type": "object",
            "description": "An answer of sessiongate's proxy itself (not of the upstream).",
            "required": ["error", "message"],
            "properties": {
                "error": { "type": "string", "example": "unauthenticated" },
                "message": { "type": "string" },
                "code": { "type": "string" },
            },
        }),
    );
    Ok(spec)
}

/// One operation: its security, the anti-CSRF header, the proxy's answers.
fn operation(
    op: &mut Map<String, Value>,
    method: &str,
    had_global_security: bool,
    through: &Through<'_>,
) {
    // Marked public by the upstream (`security: []`, or none anywhere): stays public.
    let own = op.get("security").and_then(Value::as_array).map(Vec::len);
    let protected = match own {
        Some(n) => n > 0,
        None => had_global_security,
    };
    if through.public || !protected {
        if own.is_some() {
            op.insert("security".into(), json!([]));
        }
    } else {
        op.insert("security".into(), json!([{ COOKIE_SCHEME: [] }]));
    }
    let mut answers = vec![
        (
            "502",
            "The upstream could not be reached, or answered garbage.",
        ),
        (
            "503",
            "The session store is unavailable, or the token could not be refreshed now.",
        ),
        (
            "504",
            "The upstream did not answer within the route's timeout.",
        ),
    ];
    if !through.public {
        answers.push((
            "401",
            "No session (`unauthenticated`), or it has ended (`session_expired`).",
        ));
        if UNSAFE.contains(&method) {
            answers.push(("403", "The anti-CSRF header is missing (`csrf`)."));
            let params = op.entry("parameters").or_insert_with(|| json!([]));
            if let Some(params) = params.as_array_mut() {
                params.push(json!({
                    "name": through.csrf_header,
                    "in": "header",
                    "required": true,
                    "description": "Any non-empty value: proves the request comes from script of an allowed origin.",
                    "schema": { "type": "string", "example": "1" },
                }));
            }
        }
    }
    let responses = op.entry("responses").or_insert_with(|| json!({}));
    if let Some(responses) = responses.as_object_mut() {
        for (status, description) in answers {
            responses.entry(status).or_insert_with(|| {
                json!({
                    "description": description,
                    "content": { "application/json": { "schema": {
                        "$ref": format!("#/components/schemas/{ERROR_SCHEMA}")
                    } } },
                })
            });
        }
    }
}

/// Several rewritten documents as one: paths side by side (their prefixes differ), and
/// each document's components renamed `<name>.<component>` with its `$ref`s, so two
/// upstreams' `Item` schemas do not collide.
pub fn combine(public_url: &str, specs: &[(String, Value)]) -> Value {
    let mut paths = Map::new();
    let mut components: Map<String, Value> = Map::new();
    for (name, spec) in specs {
        let mut spec = spec.clone();
        rename_refs(&mut spec, name);
        if let Some(Value::Object(p)) = spec.get("paths") {
            paths.extend(p.clone());
        }
        if let Some(Value::Object(c)) = spec.get("components") {
            for (kind, entries) in c {
                let Some(entries) = entries.as_object() else {
                    continue;
                };
                let into = components.entry(kind.clone()).or_insert_with(|| json!({}));
                if let Some(into) = into.as_object_mut() {
                    for (key, value) in entries {
                        let shared = kind == "securitySchemes" || key == ERROR_SCHEMA;
                        let key = if shared {
                            key.clone()
                        } else {
                            format!("{name}.{key}")
                        };
                        into.insert(key, value.clone());
                    }
                }
            }
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "The APIs behind sessiongate",
            "version": "1",
            "description": "Every proxied API that names its OpenAPI document, as it works through sessiongate with the session cookie.",
        },
        "servers": [{ "url": public_url }],
        "paths": paths,
        "components": components,
    })
}

/// Points every local `$ref` (`#/components/<kind>/<key>`) at `<name>.<key>`, except the
/// shared cookie scheme and error schema.
fn rename_refs(v: &mut Value, name: &str) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if k == "$ref" {
                    if let Value::String(target) = child {
                        if let Some(rest) = target.strip_prefix("#/components/") {
                            if let Some((kind, key)) = rest.split_once('/') {
                                if key != ERROR_SCHEMA {
                                    *target = format!("#/components/{kind}/{name}.{key}");
                                }
                            }
                        }
                    }
                } else {
                    rename_refs(child, name);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| rename_refs(i, name)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape FastAPI writes: HTTPBearer on protected operations only, a public
    /// health check, `$ref`s into `components.schemas`.
    fn fastapi() -> Value {
        json!({
            "openapi": "3.1.0",
            "info": {"title": "Items", "version": "0.1.0"},
            "paths": {
                "/items": {
                    "get": {"operationId": "list_items", "security": [{"HTTPBearer": []}],
                        "responses": {"200": {"description": "ok", "content": {"application/json":
                            {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}}}}}}},
                    "post": {"operationId": "create_item", "security": [{"HTTPBearer": []}],
                        "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Item"}}}},
                        "responses": {"201": {"description": "created"}}}
                },
                "/health": {"get": {"operationId": "health", "responses": {"200": {"description": "ok"}}}}
            },
            "components": {
                "schemas": {"Item": {"type": "object", "properties": {"name": {"type": "string"}}}},
                "securitySchemes": {"HTTPBearer": {"type": "http", "scheme": "bearer"}}
            }
        })
    }

    fn through(prefix: &str) -> Through<'_> {
        Through {
            public_url: "https://app.example.com",
            prefix,
            strip_prefix: true,
            public: false,
            cookie: "__Host-sessiongate",
            csrf_header: "X-CSRF",
        }
    }

    #[test]
    fn bearer_becomes_the_cookie_paths_move_under_the_prefix_and_posts_need_the_header() {
        let out = rewrite(fastapi(), &through("/api")).unwrap();
        assert_eq!(out["servers"], json!([{"url": "https://app.example.com"}]));
        let list = &out["paths"]["/api/items"]["get"];
        assert_eq!(list["operationId"], "list_items");
        assert_eq!(list["security"], json!([{"sessionCookie": []}]));
        assert_eq!(
            list["responses"]["401"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/SessiongateError"
        );
        assert!(
            list.get("parameters").is_none(),
            "a GET needs no anti-CSRF header"
        );
        let create = &out["paths"]["/api/items"]["post"];
        assert_eq!(create["parameters"][0]["name"], "X-CSRF");
        assert_eq!(create["parameters"][0]["in"], "header");
        assert_eq!(create["parameters"][0]["required"], true);
        assert_eq!(
            create["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Item",
            "$refs are kept"
        );
        let health = &out["paths"]["/api/health"]["get"];
        assert!(
            health.get("security").is_none(),
            "public stays public: {health}"
        );
        let schemes = &out["components"]["securitySchemes"];
        assert_eq!(
            schemes,
            &json!({"sessionCookie": {"type": "apiKey", "in": "cookie",
            "name": "__Host-sessiongate", "description": schemes["sessionCookie"]["description"]}})
        );
        assert!(out["components"]["schemas"]["Item"].is_object());
    }

    #[test]
    fn global_security_an_explicitly_public_operation_and_a_route_without_strip() {
        let spec = json!({
            "openapi": "3.0.3", "info": {"title": "t", "version": "1"},
            "security": [{"oauth": ["read"]}],
            "paths": {"/api/x/me": {"servers": [{"url": "https://elsewhere.example"}],
                                    "get": {"servers": [{"url": "https://elsewhere.example"}], "responses": {}}},
                      "/api/x/open": {"get": {"security": [], "responses": {}}}}
        });
        let out = rewrite(
            spec,
            &Through {
                strip_prefix: false,
                ..through("/api/x")
            },
        )
        .unwrap();
        assert_eq!(out["security"], json!([{"sessionCookie": []}]));
        // No path or operation may send requests (and the cookie's data) elsewhere.
        assert!(out["paths"]["/api/x/me"].get("servers").is_none());
        assert!(out["paths"]["/api/x/me"]["get"].get("servers").is_none());
        assert_eq!(
            out["paths"]["/api/x/me"]["get"]["security"],
            json!([{"sessionCookie": []}])
        );
        assert_eq!(out["paths"]["/api/x/open"]["get"]["security"], json!([]));
        assert!(rewrite(json!({"swagger": "2.0"}), &through("/api")).is_err());
        assert!(rewrite(json!([1]), &through("/api")).is_err());
    }

    #[test]
    fn combined_documents_keep_each_upstreams_components_apart() {
        let a = rewrite(fastapi(), &through("/api/a")).unwrap();
        let b = rewrite(fastapi(), &through("/api/b")).unwrap();
        let all = combine(
            "https://app.example.com",
            &[("a".into(), a), ("b".into(), b)],
        );
        assert!(all["components"]["schemas"]["a.Item"].is_object());
        assert!(all["components"]["schemas"]["b.Item"].is_object());
        assert_eq!(
            all["paths"]["/api/b/items"]["post"]["requestBody"]["content"]["application/json"]
                ["schema"]["$ref"],
            "#/components/schemas/b.Item"
        );
        assert_eq!(
            all["paths"]["/api/a/items"]["get"]["responses"]["401"]["content"]["application/json"]
                ["schema"]["$ref"],
            "#/components/schemas/SessiongateError"
        );
        assert!(all["components"]["securitySchemes"]["sessionCookie"].is_object());
    }
}
