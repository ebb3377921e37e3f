//! Rate limits as configuration writes them: `"count/window"`, e.g. `"10/1m"`.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// At most `max` events per `window`, written `"10/1m"` in configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: u32,
    pub window: Duration,
}

impl std::str::FromStr for Limit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (max, window) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not of the form \"10/1m\""))?;
        let max: u32 = max
            .trim()
            .parse()
            .map_err(|_| format!("`{max}` is not a whole number"))?;
        let window =
            humantime::parse_duration(window.trim()).map_err(|e| format!("`{window}`: {e}"))?;
        if max == 0 || window < Duration::from_secs(1) {
            return Err("the count must be positive and the window at least 1s".into());
        }
        Ok(Self { max, window })
    }
}

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}
