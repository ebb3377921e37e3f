//! The route table and the order of middleware, on one screen.

use std::future::Future;
use std::sync::Arc;

use futures_util::future::Either;
use futures_util::FutureExt;
use poem::endpoint::{make_sync, BoxEndpoint, StaticFilesEndpoint};
use poem::http::Method;
use poem::{get, Endpoint, EndpointExt, IntoResponse, PathPattern, Request, Response, Route};

use crate::error::{AppError, ErrorStyle};
use crate::health;
use crate::http::api_error::Errors;
use crate::http::body_limit::BodyLimit;
use crate::http::cors::Cors;
use crate::http::headers::SecurityHeaders;
use crate::http::lean::{handler, with_data};
use crate::http::observe::Observe;
use crate::proxy::{BundledApi, Proxy, ProxyRoutes};
use crate::state::AppState;

/// The SPA in `dir` (`index.html` for any path that is not a file), or 404 JSON when no
/// directory is configured or it does not exist.
fn spa(dir: &str) -> poem::endpoint::BoxEndpoint<'static> {
    let path = std::path::Path::new(dir);
    if !dir.is_empty() && path.join("index.html").is_file() {
        StaticFilesEndpoint::new(path)
            .index_file("index.html")
            .fallback_to_index()
            // HEAD wherever GET (RFC 9110 §9.1): answered as GET, and hyper sends the
            // head without the body (the static files endpoint alone answers 405).
            .before(|mut req| async move {
                if req.method() == Method::HEAD {
                    req.set_method(Method::GET);
                }
                Ok(req)
            })
            .boxed()
    } else {
        if !dir.is_empty() {
            tracing::warn!(
                dir,
                "server.static_dir has no index.html: no SPA is served at /"
            );
        }
        make_sync(|_| -> poem::Result<Response> { Err(AppError::NotFound.into()) }).boxed()
    }
}

/// The metrics listener's one route (`server.metrics_listen`, never the public listener:
/// what it shows is for operators only).
pub fn metrics(state: AppState) -> impl Endpoint<Output = Response> + 'static {
    Route::new()
        .at("/metrics", get(health::metrics))
        .data(state)
}

/// `endpoint`, answering cross-origin requests of `cors`'s origins when CORS is on.
fn cross_origin(
    endpoint: impl Endpoint<Output = Response> + 'static,
    cors: Option<&Cors>,
) -> BoxEndpoint<'static> {
    match cors {
        Some(cors) => endpoint.with(cors.clone()).boxed(),
        None => endpoint.boxed(),
    }
}

/// Whether `path` is one the table sends to the proxy whatever else is mounted: under
/// `/api/`, but neither the session API (`/api/auth`) nor the proxied APIs' documents
/// (`/api/openapi…`), which the table decides on.
fn always_proxied(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/api/") else {
        return false;
    };
    let under = |prefix: &str| {
        rest.strip_prefix(prefix)
            .is_some_and(|after| after.is_empty() || after.starts_with('/'))
    };
    !under("auth") && !rest.starts_with("openapi")
}

/// The route table, with the proxy's own paths (every SPA call) sent straight to the
/// proxy: the table's match, its nest's new URI, and their boxed futures and request
/// data cost a proxied request about 3% (`docs/perf/README.md`), for the same answer.
struct Front<T> {
    table: T,
    fast_proxy: bool,
    /// The metrics' route label of a proxied request, as the table's `/api` nest gives it.
    label: PathPattern,
}

impl<T: Endpoint<Output = Response>> Endpoint for Front<T> {
    type Output = Response;

    fn call(&self, req: Request) -> impl Future<Output = poem::Result<Response>> + Send {
        if self.fast_proxy && always_proxied(req.uri().path()) {
            let label = self.label.clone();
            // Boxed here, once: the layers above move a pointer instead of the proxy's
            // whole future (kilobytes, copied at each of them, and into the server's box).
            let forwarded = Box::pin(crate::proxy::forward::handle(req));
            Either::Left(forwarded.map(|mut resp| {
                resp.set_data(label);
                Ok(resp)
            }))
        } else {
            Either::Right(self.table.call(req))
        }
    }
}

/// Every route of the server, wrapped (outermost first) in: security headers, request
/// id + log + metrics + JSON errors + panic catching, state.
pub fn build(state: AppState) -> impl Endpoint<Output = Response> + 'static {
    let api = crate::openapi::service();
    let spec = crate::openapi::spec_json();
    let metrics = state.metrics.clone();
    let log_requests = state.settings.log.requests;
    let traced = !state.settings.telemetry.otlp_endpoint.is_empty();
    let server = &state.settings.server;
    let body_limit = server.body_limit;
    let static_dir = server.static_dir.clone();
    let cors = (!server.cors_origins.is_empty())
        .then(|| Cors::new(&server.cors_origins, &state.settings.proxy.csrf_header));

    let documented = state.specs.names();
    let docs = crate::openapi::docs(
        api.swagger_ui(),
        &documented,
        &state.settings.proxy.csrf_header,
    );
    // One API endpoint (routes built once), mounted under each of its prefixes, and
    // called in process by the proxy for `upstream = "bundled"`.
    let api = Arc::new(api.with(BodyLimit(body_limit)));
    let table = ProxyRoutes::new(&state.settings);
    for line in table.describe() {
        tracing::info!("proxy route: {line}");
    }
    let proxy = Proxy {
        routes: Arc::new(table),
        bundled: BundledApi::new(Arc::clone(&api).data(state.clone()).boxed()),
        client: crate::proxy::client::UpstreamClient::new(
            state.settings.proxy.connect_timeout,
            state.settings.proxy.timeout,
        ),
    };
    // Each route group renders its errors in its own envelope style, chosen here once.
    let group = |style| Arc::clone(&api).with(Errors(style));
    let session_api = Arc::new(group(ErrorStyle::Code));

    let mut route = Route::new();
    if !documented.is_empty() {
        // The proxied APIs' OpenAPI documents: sessiongate's, never proxied (mounted only
        // when a route names one: they take these two paths from the proxy).
        route = route
            .at(
                "/api/openapi.json",
                cross_origin(get(crate::proxy::specs::combined), cors.as_ref()),
            )
            .at(
                "/api/openapi/:file",
                cross_origin(get(crate::proxy::specs::one), cors.as_ref()),
            );
    }
    let route = route
        .nest("/docs", docs)
        .at(
            "/openapi.json",
            make_sync(move |_| spec.clone().with_content_type("application/json")),
        )
        .at("/healthz", get(health::healthz))
        .at("/readyz", get(health::readyz))
        // /api/auth/** is the session API; the rest of /api/** is the proxy. Only these
        // two answer cross-origin (CORS), and only to `server.cors_origins`.
        // The session every page load asks for, on a short path (same answer as the
        // documented `getSession`); its other methods go to the API group.
        .at(
            "/api/auth/session",
            cross_origin(
                handler(move |req: Request| {
                    let api = Arc::clone(&session_api);
                    async move {
                        if req.method() == Method::GET {
                            crate::bff::current::handle(req).await
                        } else {
                            // Boxed: the usual GET's future stays small to move.
                            Box::pin(api.get_response(req)).await
                        }
                    }
                }),
                cors.as_ref(),
            ),
        )
        // The sign-in page's one script (its passkey button).
        .at(
            "/api/auth/passkey.js",
            get(make_sync(|_| {
                Response::builder()
                    .content_type("text/javascript; charset=utf-8")
                    .header("cache-control", "public, max-age=3600")
                    .body(crate::bff::pages::PASSKEY_JS)
            })),
        )
        .nest_no_strip(
            "/api/auth",
            cross_origin(group(ErrorStyle::Code), cors.as_ref()),
        )
        .nest_no_strip(
            "/api",
            cross_origin(handler(crate::proxy::forward::handle), cors.as_ref()),
        )
        .nest_no_strip("/v1", group(ErrorStyle::Title))
        .nest_no_strip("/oauth", group(ErrorStyle::OAuth))
        .nest_no_strip("/manage-apps", group(ErrorStyle::Code))
        .nest_no_strip("/.well-known", group(ErrorStyle::Code))
        // Everything else: the single-page app (client-side routes get its index.html).
        .nest("/", spa(&static_dir));
    let front = Front {
        // With CORS on, proxied requests take the table's way (its CORS layer).
        fast_proxy: cors.is_none(),
        table: route,
        label: PathPattern(Arc::from("/api")),
    };
    with_data(with_data(front, state), Arc::new(proxy))
        .with(Observe {
            metrics: Arc::clone(&metrics),
            log_requests,
            traced,
        })
        .with(SecurityHeaders)
}

#[cfg(test)]
mod tests {
    use super::always_proxied;

    #[test]
    fn the_proxys_own_paths_skip_the_table_and_nothing_else_does() {
        for path in [
            "/api/data/x",
            "/api/users/me",
            "/api/authors",
            "/api/x/auth",
        ] {
            assert!(always_proxied(path), "{path}");
        }
        for path in [
            "/api",
            "/api/auth",
            "/api/auth/",
            "/api/auth/session",
            "/api/openapi.json",
            "/api/openapi/users.json",
            "/v1/users/me",
            "/healthz",
            "/API/data",
            "/",
        ] {
            assert!(!always_proxied(path), "{path}");
        }
    }
}
