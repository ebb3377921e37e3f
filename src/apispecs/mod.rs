//! The OpenAPI documents of the proxied upstreams (`openapi` of a `[[proxy.routes]]`),
//! fetched at start and every `proxy.openapi_refresh`, rewritten for the session cookie
//! (`rewrite.rs`) and kept for `GET /api/openapi/{name}.json` and `/api/openapi.json`.
//! A fetch that fails keeps the last good copy and is reported on `/readyz` (degraded,
//! not down); the proxy itself never depends on it.

pub mod rewrite;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;

use crate::config::Settings;

/// Largest document taken, in bytes.
pub const MAX_BYTES: usize = 4 * 1024 * 1024;
/// Longest one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a document comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A URL on the upstream (its base URL and the route's `openapi` path).
    Upstream(String),
    /// A file on this machine.
    File(PathBuf),
}

impl Source {
    /// The source `openapi` names for a route to `upstream`: a path starting with `/` is
    /// on the upstream, anything else a file (`file:` optional).
    pub fn of(openapi: &str, upstream: &str) -> Self {
        match openapi.strip_prefix("file:") {
            Some(path) => Self::File(path.into()),
            None if openapi.starts_with('/') => {
                Self::Upstream(format!("{}{openapi}", upstream.trim_end_matches('/')))
            }
            None => Self::File(openapi.into()),
        }
    }
}

struct Entry {
    name: String,
    source: Source,
    prefix: String,
    strip_prefix: bool,
    public: bool,
}

/// The last good document of a route (as served, and as JSON for the combined one), and
/// what went wrong since.
#[derive(Default, Clone)]
struct Doc {
    spec: Option<Arc<Value>>,
    bytes: Option<Arc<Vec<u8>>>,
    problem: Option<String>,
}

/// The routes' documents.
pub struct ApiSpecs {
    entries: Vec<Entry>,
    docs: RwLock<BTreeMap<String, Doc>>,
    /// Every document as one, rebuilt after each refresh.
    combined: RwLock<Arc<Vec<u8>>>,
    http: reqwest::Client,
    public_url: String,
    cookie: &'static str,
    csrf_header: String,
    every: Duration,
}

impl ApiSpecs {
    /// The documents `settings`' routes name; `cookie` is the session cookie's name.
    pub fn new(settings: &Settings, cookie: &'static str, http: reqwest::Client) -> Self {
        let entries = settings
            .proxy
            .routes
            .iter()
            .filter_map(|r| {
                Some(Entry {
                    name: r.name(),
                    source: Source::of(r.openapi.as_deref()?, &r.upstream),
                    prefix: r.prefix.trim_end_matches('/').to_owned(),
                    strip_prefix: r.strip_prefix,
                    public: r.public,
                })
            })
            .collect();
        Self {
            entries,
            docs: RwLock::new(BTreeMap::new()),
            combined: RwLock::new(Arc::new(Vec::new())),
            http,
            public_url: settings.public_url().to_owned(),
            cookie,
            csrf_header: settings.proxy.csrf_header.clone(),
            every: settings.proxy.openapi_refresh,
        }
    }

    /// Fetches every document now, then every `proxy.openapi_refresh`, on `background`.
    pub fn keep_fresh(self: &Arc<Self>, background: &crate::background::Background) {
        if self.entries.is_empty() {
            return;
        }
        let specs = Arc::clone(self);
        background.spawn(async move {
            loop {
                specs.refresh().await;
                tokio::time::sleep(specs.every).await;
            }
        });
    }

    /// Fetches and rewrites every document once (all at the same time: one upstream
    /// that hangs delays no other), then rebuilds the combined one.
    pub async fn refresh(&self) {
        let outcomes =
            futures_util::future::join_all(self.entries.iter().map(|entry| async move {
                let outcome = match self.fetch(&entry.source).await {
                    Ok(raw) => rewrite::rewrite(
                        raw,
                        &rewrite::Through {
                            public_url: &self.public_url,
                            prefix: &entry.prefix,
                            strip_prefix: entry.strip_prefix,
                            public: entry.public,
                            cookie: self.cookie,
                            csrf_header: &self.csrf_header,
                        },
                    ),
                    Err(e) => Err(e),
                };
                (entry, outcome)
            }))
            .await;
        let Ok(mut docs) = self.docs.write() else {
            return;
        };
        for (entry, outcome) in outcomes {
            let doc = docs.entry(entry.name.clone()).or_default();
            let served = outcome.and_then(|spec| {
                let bytes = serde_json::to_vec(&spec).map_err(|e| e.to_string())?;
                Ok((spec, bytes))
            });
            match served {
                Ok((spec, bytes)) => {
                    doc.spec = Some(Arc::new(spec));
                    doc.bytes = Some(Arc::new(bytes));
                    doc.problem = None;
                }
                Err(problem) => {
                    let from = match &entry.source {
                        Source::Upstream(url) => url.clone(),
                        Source::File(path) => path.display().to_string(),
                    };
                    tracing::warn!(
                        route = %entry.prefix,
                        from,
                        "the OpenAPI document of `{}` could not be taken ({problem}); {}",
                        entry.name,
                        if doc.spec.is_some() { "the last good copy is served" } else { "none is served yet" }
                    );
                    doc.problem = Some(problem);
                }
            }
        }
        let specs: Vec<(String, Value)> = self
            .entries
            .iter()
            .filter_map(|e| Some((e.name.clone(), (*docs.get(&e.name)?.spec.clone()?).clone())))
            .collect();
        drop(docs);
        let combined = rewrite::combine(&self.public_url, &specs);
        if let (Ok(bytes), Ok(mut slot)) = (serde_json::to_vec(&combined), self.combined.write()) {
            *slot = Arc::new(bytes);
        }
    }

    async fn fetch(&self, source: &Source) -> Result<Value, String> {
        let bytes = match source {
            Source::File(path) => {
                let size = tokio::fs::metadata(path)
                    .await
                    .map_err(|e| format!("cannot be read: {}", e.kind()))?;
                if !size.is_file() || size.len() > MAX_BYTES as u64 {
                    return Err(format!("not a file of at most {MAX_BYTES} bytes"));
                }
                tokio::time::timeout(FETCH_TIMEOUT, tokio::fs::read(path))
                    .await
                    .map_err(|_| format!("not read within {FETCH_TIMEOUT:?}"))?
                    .map_err(|e| format!("cannot be read: {}", e.kind()))?
            }
            Source::Upstream(url) => tokio::time::timeout(FETCH_TIMEOUT, self.download(url))
                .await
                .map_err(|_| format!("no answer within {FETCH_TIMEOUT:?}"))??,
        };
        // Parsing 4 MiB is CPU work: not on a runtime thread.
        tokio::task::spawn_blocking(move || parse(&bytes))
            .await
            .map_err(|_| "could not be parsed".to_owned())?
    }

    async fn download(&self, url: &str) -> Result<Vec<u8>, String> {
        let mut resp = self
            .http
            .get(url)
            .header("accept", "application/json, application/yaml")
            .send()
            .await
            .map_err(|_| "unreachable".to_owned())?;
        if !resp.status().is_success() {
            return Err(format!("answered {}", resp.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|_| "cut off".to_owned())? {
            if body.len() + chunk.len() > MAX_BYTES {
                return Err(format!("larger than {MAX_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// The names served, in order.
    pub fn names(&self) -> Vec<String> {
        self.entries.iter().map(|e| e.name.clone()).collect()
    }

    /// `name`'s rewritten document, as JSON: `None` for no such route, `Err` when none
    /// could be taken yet (with why).
    pub fn get(&self, name: &str) -> Option<Result<Arc<Vec<u8>>, String>> {
        self.entries.iter().find(|e| e.name == name)?;
        let docs = self.docs.read().ok()?;
        let doc = docs.get(name).cloned().unwrap_or_default();
        Some(
            doc.bytes
                .ok_or_else(|| doc.problem.unwrap_or_else(|| "not fetched yet".to_owned())),
        )
    }

    /// Every document taken so far, as one (JSON).
    pub fn combined(&self) -> Arc<Vec<u8>> {
        self.combined
            .read()
            .map(|c| Arc::clone(&c))
            .unwrap_or_default()
    }

    /// For `/readyz`: each route's document, `ok` or what is wrong with it (never where it
    /// comes from: that is in the log).
    pub fn health(&self) -> Vec<(String, Option<String>)> {
        let Ok(docs) = self.docs.read() else {
            return Vec::new();
        };
        self.entries
            .iter()
            .map(|e| {
                let doc = docs.get(&e.name);
                let problem = match doc {
                    None => Some("not fetched yet".to_owned()),
                    Some(d) => d.problem.clone(),
                };
                (e.name.clone(), problem)
            })
            .collect()
    }
}

/// A document as JSON or YAML.
fn parse(bytes: &[u8]) -> Result<Value, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned())?;
    if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))
    } else if has_anchor(text) {
        // An alias may expand to far more than the document's size (a "billion laughs").
        Err(
            "YAML anchors (&) and aliases (*) are not taken: write it as JSON or without them"
                .into(),
        )
    } else {
        serde_yaml::from_str(text).map_err(|e| format!("neither JSON nor valid YAML: {e}"))
    }
}

/// Whether a YAML text defines an anchor (`&name` where a node may start). Without one
/// no alias can refer to anything.
fn has_anchor(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().any(|(i, &b)| {
        b == b'&'
            && (i == 0
                || matches!(
                    bytes[i - 1],
                    b' ' | b'\t' | b'\n' | b'[' | b'{' | b',' | b':' | b'-'
                ))
            && bytes.get(i + 1).is_some_and(|n| !n.is_ascii_whitespace())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_on_the_upstream_anything_else_a_file() {
        assert_eq!(
            Source::of("/openapi.json", "http://127.0.0.1:8000/"),
            Source::Upstream("http://127.0.0.1:8000/openapi.json".into())
        );
        assert_eq!(
            Source::of("file:/etc/api.yaml", "http://x"),
            Source::File("/etc/api.yaml".into())
        );
        assert_eq!(
            Source::of("specs/api.json", "http://x"),
            Source::File("specs/api.json".into())
        );
    }

    #[test]
    fn json_and_yaml_are_read_and_anything_else_is_said() {
        assert_eq!(
            parse(b"{\"openapi\": \"3.1.0\"}").unwrap()["openapi"],
            "3.1.0"
        );
        assert_eq!(
            parse(b"openapi: 3.0.3\npaths: {}\n").unwrap()["openapi"],
            "3.0.3"
        );
        assert!(parse(b"{not json").unwrap_err().contains("JSON"));
        assert!(parse(&[0xff, 0xfe]).unwrap_err().contains("UTF-8"));
        // A "billion laughs": refused before it is expanded.
        let bomb = "a: &a [0, 0, 0]\nb: [*a, *a, *a]\n";
        assert!(parse(bomb.as_bytes()).unwrap_err().contains("anchors"));
        assert!(parse(b"info: {title: 'Tom & Jerry'}\n").is_ok());
    }
}
