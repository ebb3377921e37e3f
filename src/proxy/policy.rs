//! A route's policy (`methods`, `public`, `require` of `[[proxy.routes]]`), compiled once
//! and checked before anything is forwarded.

use poem::http::{HeaderValue, Method};

use crate::config::{ProxyRoute, Require};
use crate::session::Session;

/// Why a session may not use a route: the condition of `require` it failed, or the
/// one provider of `provider`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// `provider`: the session is of another provider (401: sign in with that one).
    Provider,
    /// A condition of `require` (403 `forbidden`), by its key.
    Condition(&'static str),
}

impl Denied {
    /// The condition's name, as metrics label it.
    pub fn name(self) -> &'static str {
        match self {
            Denied::Provider => "provider",
            Denied::Condition(c) => c,
        }
    }

    /// What the browser is told.
    pub fn message(self) -> &'static str {
        match self {
            Denied::Provider => "This API needs a sign-in with another provider.",
            Denied::Condition("email_domains") => {
                "Not allowed: this API takes users of other email domains (condition `email_domains`)."
            }
            Denied::Condition("users") => {
                "Not allowed: this API takes other users (condition `users`)."
            }
            Denied::Condition("groups") => {
                "Not allowed: this API takes members of other groups (condition `groups`)."
            }
            Denied::Condition("roles") => {
                "Not allowed: this API takes users with other roles (condition `roles`)."
            }
            Denied::Condition(_) => {
                "Not allowed: this API takes sign-ins with other providers (condition `providers`)."
            }
        }
    }
}

/// The compiled policy of one route.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The methods taken (HEAD wherever GET), and their `Allow`; `None`: all of them.
    methods: Option<(Vec<Method>, HeaderValue)>,
    /// No session, no token.
    pub public: bool,
    /// WebSocket upgrades are proxied.
    pub websocket: bool,
    /// Sessions of these providers may call (each sends its own token).
    providers: Vec<String>,
    /// The providers came from `require.providers` (a 403), not `provider` (a 401).
    providers_required: bool,
    /// Lower-cased domains and users; groups and roles as written.
    require: Require,
}

fn lower(list: &Option<Vec<String>>) -> Option<Vec<String>> {
    list.as_ref()
        .map(|l| l.iter().map(|e| e.trim().to_ascii_lowercase()).collect())
}

impl Policy {
    /// The policy of `route` (validated at startup: the methods are known ones).
    pub fn of(route: &ProxyRoute) -> Self {
        let methods = route.methods.as_ref().map(|list| {
            let mut methods: Vec<Method> = list
                .iter()
                .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
                .collect();
            if methods.contains(&Method::GET) && !methods.contains(&Method::HEAD) {
                methods.push(Method::HEAD);
            }
            let allow = methods
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            let allow = HeaderValue::from_str(&allow).unwrap_or(HeaderValue::from_static(""));
            (methods, allow)
        });
        let require = route.require.clone().unwrap_or_default();
        Self {
            methods,
            public: route.public,
            websocket: route.websocket.unwrap_or(route.methods.is_none()),
            providers: route.providers().into_iter().map(str::to_owned).collect(),
            providers_required: require.providers.is_some(),
            require: Require {
                email_domains: lower(&require.email_domains),
                users: require.users.as_ref().map(|l| {
                    l.iter()
                        .map(|u| {
                            // Emails compare without case; `provider:id` exactly.
                            if u.contains('@') && !u.contains(':') {
                                u.trim().to_ascii_lowercase()
                            } else {
                                u.trim().to_owned()
                            }
                        })
                        .collect()
                }),
                ..require
            },
        }
    }

    /// For the start-up log: who may call, with which methods.
    pub fn describe(&self) -> String {
        let who = if self.public {
            "public, no token".to_owned()
        } else {
            let mut who = format!("token of `{}`", self.providers.join("`/`"));
            let r = &self.require;
            for (name, list) in [
                ("email_domains", &r.email_domains),
                ("users", &r.users),
                ("groups", &r.groups),
                ("roles", &r.roles),
            ] {
                if list.is_some() {
                    who.push_str(&format!(", requires {name}"));
                }
            }
            who
        };
        match &self.methods {
            Some((_, allow)) => format!("{who}; {}", allow.to_str().unwrap_or_default()),
            None => who,
        }
    }

    /// Whether the route lists its methods.
    pub fn limits_methods(&self) -> bool {
        self.methods.is_some()
    }

    /// `Err(Allow)` when the route does not take `method`.
    pub fn method(&self, method: &Method) -> Result<(), HeaderValue> {
        match &self.methods {
            Some((methods, allow)) if !methods.contains(method) => Err(allow.clone()),
            _ => Ok(()),
        }
    }

    /// Whether `session` may use the route, or the first condition it fails.
    pub fn admits(&self, session: &Session) -> Result<(), Denied> {
        if !self.providers.contains(&session.provider) {
            return Err(if self.providers_required {
                Denied::Condition("providers")
            } else {
                Denied::Provider
            });
        }
        let user = &session.user;
        // Only an address the provider vouches for says who the user is.
        let email = user
            .email
            .as_deref()
            .filter(|_| user.access.email_verified)
            .map(str::to_ascii_lowercase);
        let r = &self.require;
        if let Some(domains) = &r.email_domains {
            let domain = email
                .as_deref()
                .and_then(|e| e.rsplit_once('@'))
                .map(|(_, d)| d);
            if !domain.is_some_and(|d| domains.iter().any(|x| x == d)) {
                return Err(Denied::Condition("email_domains"));
            }
        }
        if let Some(users) = &r.users {
            // The provider's user id only: logins and nicknames are neither unique nor
            // stable (renamed, then registered by someone else).
            let id = format!("{}:{}", session.provider, user.id);
            let mut who = email.into_iter().chain(std::iter::once(id));
            if !who.any(|w| users.contains(&w)) {
                return Err(Denied::Condition("users"));
            }
        }
        let any = |wanted: &Option<Vec<String>>, held: &[String]| {
            wanted
                .as_ref()
                .is_none_or(|w| w.iter().any(|x| held.contains(x)))
        };
        if !any(&r.groups, &user.access.groups) {
            return Err(Denied::Condition("groups"));
        }
        if !any(&r.roles, &user.access.roles) {
            return Err(Denied::Condition("roles"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{Access, SessionUser, TokenSet};

    fn session(provider: &str, email: &str, verified: bool, groups: &[&str]) -> Session {
        Session {
            version: 1,
            user: SessionUser {
                id: "7".into(),
                login: Some("ada".into()),
                email: Some(email.into()),
                access: Access {
                    email_verified: verified,
                    groups: groups.iter().map(|g| (*g).to_owned()).collect(),
                    roles: vec![],
                },
                ..SessionUser::default()
            },
            provider: provider.into(),
            tokens: TokenSet::default(),
            created_at: 0,
            last_seen: 0,
        }
    }

    fn route(require: Require) -> ProxyRoute {
        ProxyRoute {
            prefix: "/api/x".into(),
            upstream: "http://127.0.0.1:1".into(),
            require: Some(require),
            ..ProxyRoute::default()
        }
    }

    #[test]
    fn head_goes_with_get_and_allow_lists_the_methods() {
        let p = Policy::of(&ProxyRoute {
            methods: Some(vec!["GET".into(), "POST".into()]),
            ..ProxyRoute::default()
        });
        assert_eq!(p.method(&Method::HEAD), Ok(()));
        assert_eq!(
            p.method(&Method::DELETE),
            Err(HeaderValue::from_static("GET, POST, HEAD"))
        );
        assert_eq!(
            Policy::of(&ProxyRoute::default()).method(&Method::DELETE),
            Ok(())
        );
    }

    #[test]
    fn an_unvouched_email_matches_no_domain_and_no_user() {
        let p = Policy::of(&route(Require {
            providers: Some(vec!["oidc".into()]),
            email_domains: Some(vec!["Example.com".into()]),
            ..Require::default()
        }));
        assert_eq!(
            p.admits(&session("oidc", "Ada@EXAMPLE.com", true, &[])),
            Ok(())
        );
        let unverified = session("oidc", "ada@example.com", false, &[]);
        assert_eq!(
            p.admits(&unverified),
            Err(Denied::Condition("email_domains"))
        );
        let lookalike = session("oidc", "ada@evil-example.com", true, &[]);
        assert_eq!(
            p.admits(&lookalike),
            Err(Denied::Condition("email_domains"))
        );
        let users = Policy::of(&route(Require {
            providers: Some(vec!["oidc".into()]),
            users: Some(vec!["ada@example.com".into(), "oidc:42".into()]),
            ..Require::default()
        }));
        assert_eq!(users.admits(&unverified), Err(Denied::Condition("users")));
        assert_eq!(
            users.admits(&session("oidc", "ada@example.com", true, &[])),
            Ok(())
        );
        let by_id = Policy::of(&route(Require {
            providers: Some(vec!["oidc".into()]),
            users: Some(vec!["oidc:7".into()]),
            ..Require::default()
        }));
        assert_eq!(by_id.admits(&unverified), Ok(()));
        // A login is not an identity: `ada` may be renamed and registered by another.
        let by_login = Policy::of(&route(Require {
            providers: Some(vec!["oidc".into()]),
            users: Some(vec!["oidc:ada".into()]),
            ..Require::default()
        }));
        assert_eq!(
            by_login.admits(&unverified),
            Err(Denied::Condition("users"))
        );
    }

    #[test]
    fn every_condition_must_hold_and_any_entry_is_enough() {
        let p = Policy::of(&route(Require {
            providers: Some(vec!["oidc".into(), "42".into()]),
            groups: Some(vec!["staff".into(), "ops".into()]),
            ..Require::default()
        }));
        assert_eq!(p.admits(&session("42", "a@b.c", true, &["ops"])), Ok(()));
        assert_eq!(
            p.admits(&session("oidc", "a@b.c", true, &["users"])),
            Err(Denied::Condition("groups"))
        );
        assert_eq!(
            p.admits(&session("github", "a@b.c", true, &["ops"])),
            Err(Denied::Condition("providers"))
        );
        // The one `provider` of a route (default `credentials`) stays a 401.
        let plain = Policy::of(&ProxyRoute::default());
        assert_eq!(
            plain.admits(&session("42", "a@b.c", true, &[])),
            Err(Denied::Provider)
        );
    }
}
