//! Operations: the request log and metrics middleware, health and readiness.

pub mod body_limit;
pub mod client_ip;
pub mod health;
pub mod metrics;
pub mod observe;
