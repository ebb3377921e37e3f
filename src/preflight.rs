//! The checks the configuration cannot make alone, because another feature owns the
//! answer: provider tables (their schema is the providers'), which providers the proxy
//! routes name, and the authorization server's clients. Startup runs them after the
//! configuration's own checks; every problem is reported at once, one line each.

use std::path::Path;

use crate::config::{ConfigError, Settings};
use crate::providers::config::{preset_table, provider_id};
use crate::providers::{configured_ids, SELF_PROVIDER};

/// Loads the configuration and runs every check, the configuration's own and these.
pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
    let settings = Settings::read(file)?;
    let mut problems = settings.problems();
    problems.extend(check(&settings));
    if problems.is_empty() {
        Ok(settings)
    } else {
        Err(ConfigError(problems.join("\n")))
    }
}

/// What the user probably meant by a provider id that is not configured.
fn provider_hint(settings: &Settings, id: &str) -> String {
    let tables = &settings.providers.others;
    if tables.contains_key(id) && provider_id(id) != id {
        return format!(
            "; [providers.{id}] is the provider `{}`: write provider = \"{}\"",
            provider_id(id),
            provider_id(id)
        );
    }
    if let Some(table) = preset_table(id) {
        return format!(
            "; `{id}` is [providers.{table}], enabled by setting its client_id and client_secret \
             (SESSIONGATE_PROVIDERS__{}__CLIENT_ID / __CLIENT_SECRET)",
            table.to_ascii_uppercase()
        );
    }
    String::new()
}

/// The cross-feature problems of `settings`, one line each.
pub fn check(settings: &Settings) -> Vec<String> {
    let (known, mut problems) = configured_ids(settings);
    let tables = &settings.providers.others;
    for (i, route) in settings.proxy.routes.iter().enumerate() {
        let key = match route.provider {
            Some(_) => "provider",
            None => "require.providers",
        };
        for provider in route.providers() {
            // A route naming a broken table is reported with the table, not twice.
            let broken = !problems.is_empty() && tables.keys().any(|t| provider_id(t) == provider);
            if !known.iter().any(|k| k == provider) && !broken {
                problems.push(format!(
                    "proxy.routes[{i}].{key}: no provider `{provider}` is configured{} (configured: {})",
                    provider_hint(settings, provider),
                    known.join(", ")
                ));
            }
        }
    }
    for (i, c) in settings.oauth.clients.iter().enumerate() {
        let key = format!("oauth.clients[{i}]");
        if c.client_id == SELF_PROVIDER && settings.oauth.self_provider {
            problems.push(format!(
                "{key}.client_id: `{}` is taken by oauth.self_provider",
                c.client_id
            ));
        }
        for (j, uri) in c.redirect_uris.iter().enumerate() {
            if let Err(e) = crate::oauth_server::check_redirect_uri(uri) {
                problems.push(format!("{key}.redirect_uris[{j}]: {e}"));
            }
        }
        for scope in c.scopes.split_whitespace() {
            if !crate::oauth_server::SCOPES.contains(&scope) {
                problems.push(format!(
                    "{key}.scopes: unknown scope `{scope}` (known: {})",
                    crate::oauth_server::SCOPES.join(" ")
                ));
            }
        }
    }
    problems
}
