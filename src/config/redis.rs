//! `[redis]`: which of the three modes (one server, a Cluster, Sentinel), checked so that
//! a wrong combination is a start-up error naming the keys.

use super::sections::RedisSettings;
use crate::store::connect::RedisTarget;

impl RedisSettings {
    /// Where Redis is; `None`: the in-process memory stores.
    pub fn target(&self) -> Option<RedisTarget> {
        let urls = |v: &[crate::crypto::Secret]| v.iter().map(|s| s.expose().to_owned()).collect();
        if !self.cluster.is_empty() {
            Some(RedisTarget::Cluster(urls(&self.cluster)))
        } else if !self.sentinels.is_empty() {
            Some(RedisTarget::Sentinel {
                sentinels: urls(&self.sentinels),
                master: self.sentinel_master.clone(),
            })
        } else if !self.url.expose().is_empty() {
            Some(RedisTarget::Url(self.url.expose().to_owned()))
        } else {
            None
        }
    }

    pub(super) fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let modes: Vec<&str> = [
            (!self.url.expose().is_empty(), "redis.url"),
            (!self.cluster.is_empty(), "redis.cluster"),
            (!self.sentinels.is_empty(), "redis.sentinels"),
        ]
        .into_iter()
        .filter_map(|(set, key)| set.then_some(key))
        .collect();
        if modes.len() > 1 {
            problems.push(format!(
                "{}: set exactly one of redis.url (one server), redis.cluster (cluster seed \
                 nodes) and redis.sentinels (with redis.sentinel_master)",
                modes.join(" and ")
            ));
        }
        let scheme = |key: String, url: &str, problems: &mut Vec<String>| {
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                problems.push(format!(
                    "{key}: must start with redis:// or rediss:// (TLS)"
                ));
            } else if url.contains("#insecure") {
                problems.push(format!(
                    "{key}: #insecure would accept any certificate; use redis.ca_file for a \
                     private CA"
                ));
            }
        };
        if !self.url.expose().is_empty() {
            scheme("redis.url".into(), self.url.expose(), &mut problems);
        }
        for (list, key) in [
            (&self.cluster, "redis.cluster"),
            (&self.sentinels, "redis.sentinels"),
        ] {
            for (i, url) in list.iter().enumerate() {
                scheme(format!("{key}[{i}]"), url.expose(), &mut problems);
            }
            let tls = list
                .iter()
                .filter(|u| u.expose().starts_with("rediss://"))
                .count();
            if tls != 0 && tls != list.len() {
                problems.push(format!("{key}: all rediss:// (TLS) or none"));
            }
        }
        match (self.sentinels.is_empty(), self.sentinel_master.is_empty()) {
            (false, true) => problems.push(
                "redis.sentinel_master: the name of the primary the sentinels watch (as in \
                 their `sentinel monitor <name> …`) is required with redis.sentinels"
                    .into(),
            ),
            (true, false) => problems.push(
                "redis.sentinel_master: set only with redis.sentinels (the sentinels to ask)"
                    .into(),
            ),
            _ => {}
        }
        if !self.cluster.is_empty() && (self.prefix.contains('{') || self.prefix.contains('}')) {
            problems.push(
                "redis.prefix: no { or } with redis.cluster (the key names' own hash tags place \
                 them on the cluster's slots)"
                    .into(),
            );
        }
        if !self.ca_file.is_empty() {
            let tls = self.url.expose().starts_with("rediss://")
                || self
                    .cluster
                    .iter()
                    .chain(&self.sentinels)
                    .any(|u| u.expose().starts_with("rediss://"));
            if !tls {
                problems.push("redis.ca_file: set, but no Redis URL is rediss:// (TLS)".into());
            } else if !std::path::Path::new(&self.ca_file).is_file() {
                problems.push(format!(
                    "redis.ca_file: {} is not a readable file",
                    self.ca_file
                ));
            }
        }
        problems
    }
}
