//! The integration suite: real servers on 127.0.0.1, real SQLite/PostgreSQL and Redis.

mod architecture;
mod auth_flow;
mod bad_input;
mod bff;
mod bff_logout;
mod browser;
mod cli;
mod docs;
mod faults;
mod first_day;
mod hardening;
mod helpers;
mod idp;
mod oauth_flow;
mod oauth_server;
mod op_logout;
mod openapi;
mod openid_provider;
mod ops;
mod par;
mod passwords;
mod providers;
mod proxy;
mod rate_limits;
pub mod stand_ins;
mod store_contract;
