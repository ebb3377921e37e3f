//! What a `[[proxy.routes]]` policy may say: known methods, no empty lists, no conditions
//! on a public route, one way of naming the providers.

use super::ProxyRoute;

/// The methods a route may list (RFC 9110 §9 and PATCH, RFC 5789).
pub const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// The problems of route `i`'s policy, one line each.
pub(super) fn problems(i: usize, route: &ProxyRoute) -> Vec<String> {
    let key = format!("proxy.routes[{i}]");
    let mut problems = Vec::new();
    if let Some(methods) = &route.methods {
        if methods.is_empty() {
            problems.push(format!(
                "{key}.methods: empty (leave it out for every method)"
            ));
        }
        for m in methods {
            if !METHODS.contains(&m.as_str()) {
                problems.push(format!(
                    "{key}.methods: unknown method `{m}` (known: {})",
                    METHODS.join(", ")
                ));
            }
        }
    }
    let takes_get = route
        .methods
        .as_ref()
        .is_none_or(|m| m.iter().any(|m| m == "GET"));
    if route.websocket == Some(true) && !takes_get {
        problems.push(format!(
            "{key}.websocket: an upgrade is a GET, which `methods` does not list"
        ));
    }
    if route.name.is_some() || route.openapi.is_some() {
        let name = route.name();
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !ok {
            problems.push(format!(
                "{key}.name: `{name}`: lowercase letters, digits, - and _ (at most 64; by default the prefix's last segment)"
            ));
        }
    }
    if let Some(openapi) = &route.openapi {
        if route.upstream == "bundled" {
            problems.push(format!(
                "{key}.openapi: the bundled API's document is sessiongate's own /openapi.json"
            ));
        }
        // A path on the upstream stays on its origin: no other host, no way up.
        let lower = openapi.to_ascii_lowercase();
        let escapes = if openapi.starts_with('/') {
            openapi.starts_with("//")
                || openapi.contains("..")
                || lower.contains("%2e")
                || lower.contains("%2f")
                || lower.contains("%5c")
                || openapi.contains('\\')
                || openapi.contains('@')
                || openapi.contains("://")
                || openapi.chars().any(char::is_control)
        } else {
            // Not on the upstream: a file, never a URL of another host.
            !openapi.starts_with("file:") && openapi.contains("://")
        };
        if openapi.is_empty() || escapes {
            problems.push(format!(
                "{key}.openapi: `{openapi}` must be a path on the upstream (`/openapi.json`) or a file (`file:api.yaml`)"
            ));
        }
    }
    let Some(require) = &route.require else {
        return problems;
    };
    if route.public {
        problems.push(format!(
            "{key}.require: a public route has no signed-in user to check (drop one of the two)"
        ));
    }
    let lists = [
        ("email_domains", &require.email_domains),
        ("users", &require.users),
        ("groups", &require.groups),
        ("roles", &require.roles),
        ("providers", &require.providers),
    ];
    if lists.iter().all(|(_, l)| l.is_none()) {
        problems.push(format!(
            "{key}.require: names no condition (email_domains, users, groups, roles, providers)"
        ));
    }
    for (name, list) in lists {
        let Some(list) = list else { continue };
        if list.is_empty() || list.iter().any(|e| e.trim().is_empty()) {
            problems.push(format!(
                "{key}.require.{name}: an empty list or entry would let no one in"
            ));
        }
    }
    for d in require.email_domains.iter().flatten() {
        if d.contains('@') || d.starts_with('.') || !d.contains('.') {
            problems.push(format!(
                "{key}.require.email_domains: `{d}` is not a domain (write `example.com`)"
            ));
        }
    }
    for u in require.users.iter().flatten() {
        if !u.contains('@') && !u.contains(':') {
            problems.push(format!(
                "{key}.require.users: `{u}` is neither an email nor `provider:id`"
            ));
        }
    }
    if require.providers.is_some() && route.provider.is_some() {
        problems.push(format!(
            "{key}.provider: give it or require.providers, not both"
        ));
    }
    problems
}
