//! Configuration that does not load, reported the way a person fixes it: every problem on
//! its own line, naming the key (not only the first serde met), durations with an
//! example, and never a value that was given (it may be a secret).

use figment::error::{Actual, Kind};
use figment::providers::{Format, Toml};
use figment::value::{Dict, Value};
use figment::Figment;

use super::{sections::*, DEFAULT_TOML};

/// One line per error: `<key>: <what is wrong>`.
pub fn describe(error: figment::Error) -> String {
    let key = if error.path.is_empty() {
        "configuration".to_owned()
    } else {
        error.path.join(".")
    };
    if let Kind::UnknownField(field, _) = &error.kind {
        let full = if error.path.last() == Some(field) {
            key
        } else if error.path.is_empty() {
            field.clone()
        } else {
            format!("{key}.{field}")
        };
        return format!("{full}: unknown configuration key");
    }
    let mut what = what_is_wrong(&error.kind);
    if let Some(source) = error.metadata.as_ref().map(|m| m.name.to_string()) {
        what = format!("{what} (from {source})");
    }
    format!("{key}: {what}")
}

/// What is wrong, in words that never repeat the value (it may be a key or a password),
/// with an example for a duration.
pub fn what_is_wrong(kind: &Kind) -> String {
    let mut what = match kind {
        Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => {
            format!("expected {expected}, found {}", kind_of(actual))
        }
        Kind::Message(msg) => match toml_syntax(msg) {
            Some(short) => short,
            None => msg.clone(),
        },
        other => other.to_string(),
    };
    let about_a_duration = match kind {
        Kind::InvalidType(_, expected) | Kind::InvalidValue(_, expected) => {
            expected.contains("duration")
        }
        Kind::Message(msg) => is_duration_error(msg),
        _ => false,
    };
    if about_a_duration {
        what.push_str(" (a duration such as \"90s\", \"15m\", \"8h\" or \"7d\")");
    }
    what
}

/// A TOML syntax error without the source line it quotes (`jwt_secret = s3cr3t` written
/// without quotes would otherwise be printed back): where, and why.
fn toml_syntax(msg: &str) -> Option<String> {
    if !msg.starts_with("TOML parse error") {
        return None;
    }
    let mut lines = msg.lines();
    let at = lines.next()?.trim();
    let caret = |l: &str| l.contains('^') && l.chars().all(|c| matches!(c, ' ' | '|' | '^'));
    let why: Vec<&str> = lines
        .skip_while(|l| !caret(l))
        .skip(1)
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    Some(match why.is_empty() {
        true => at.to_owned(),
        false => format!("{at}: {}", why.join("; ")),
    })
}

/// What kind of value was found, without the value.
fn kind_of(actual: &Actual) -> &'static str {
    match actual {
        Actual::Bool(_) => "a boolean",
        Actual::Unsigned(_) | Actual::Signed(_) | Actual::Float(_) => "a number",
        Actual::Char(_) | Actual::Str(_) => "a string",
        Actual::Bytes(_) => "bytes",
        Actual::Unit | Actual::Option | Actual::NewtypeStruct => "nothing",
        Actual::Seq => "a list",
        Actual::Map => "a table",
        _ => "another kind of value",
    }
}

/// Whether `msg` is humantime's refusal of a duration.
fn is_duration_error(msg: &str) -> bool {
    [
        "expected number",
        "unknown time unit",
        "time unit needed",
        "invalid character",
        "value was empty",
        "number is too large",
    ]
    .iter()
    .any(|m| msg.contains(m))
}

/// Every problem of a configuration that did not load: each unknown key (serde stops at
/// the first), then the first type error of each section.
pub fn every_problem(figment: &Figment, first: figment::Error) -> Vec<String> {
    let mut problems = Vec::new();
    if let (Ok(given), Ok(known)) = (
        figment.extract::<Dict>(),
        Figment::from(Toml::string(DEFAULT_TOML)).extract::<Dict>(),
    ) {
        unknown_keys(&given, &known, "", &mut problems);
    }
    macro_rules! section {
        ($($name:literal => $ty:ty),* $(,)?) => {
            $(
                if let Err(e) = figment.extract_inner::<$ty>($name) {
                    for mut e in e {
                        // figment appends the section to the key path: put it first.
                        if e.path.last().map(String::as_str) == Some($name) {
                            e.path.pop();
                            e.path.insert(0, $name.to_owned());
                        }
                        // (Unknown keys the comparison above found come again here:
                        // the lines are the same, and the duplicates go below.)
                        problems.push(describe(e));
                    }
                }
            )*
        };
    }
    section!(
        "server" => ServerSettings,
        "database" => DatabaseSettings,
        "redis" => RedisSettings,
        "session" => SessionSettings,
        "auth" => AuthSettings,
        "proxy" => ProxySettings,
        "rate_limit" => RateLimitSettings,
        "providers" => ProvidersSettings,
        "mail" => MailSettings,
        "log" => LogSettings,
        "oauth" => OAuthSettings,
    );
    if problems.is_empty() {
        problems.push(describe(first));
    }
    let mut seen = std::collections::BTreeSet::new();
    problems.retain(|p| seen.insert(p.clone()));
    problems
}

/// Keys of `given` that `known` (the embedded defaults, which list every key) lacks.
/// Provider tables are the providers' to check, lists of tables (routes, clients) serde's.
fn unknown_keys(given: &Dict, known: &Dict, path: &str, out: &mut Vec<String>) {
    for (key, value) in given {
        let full = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        match known.get(key) {
            None => out.push(format!("{full}: unknown configuration key")),
            Some(Value::Dict(_, inner)) if full == "providers" => {
                if let (Value::Dict(_, given_creds), Some(Value::Dict(_, known_creds))) = (
                    value
                        .find_ref("credentials")
                        .cloned()
                        .unwrap_or(Value::from(Dict::new())),
                    inner.get("credentials"),
                ) {
                    unknown_keys(&given_creds, known_creds, "providers.credentials", out);
                }
            }
            Some(Value::Dict(_, inner)) => {
                if let Value::Dict(_, given_inner) = value {
                    unknown_keys(given_inner, inner, &full, out);
                }
            }
            Some(_) => {}
        }
    }
}
