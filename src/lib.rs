//! sessiongate: a backend-for-frontend session proxy with a bundled auth API.
//!
//! The binary (`main.rs`) only parses the command line; everything else is here so the
//! integration tests can build and run the same application in-process.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
// Error responses carry their JSON body by value (~170 bytes); they are the cold path,
// and boxing them would only add an allocation to every error.
#![allow(clippy::result_large_err)]

pub mod accounts;
pub mod apispecs;
pub mod background;
pub mod bff;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod db;
pub mod error;
pub mod health;
pub mod http;
pub mod mail;
pub mod oauth;
pub mod oauth_server;
pub mod openapi;
pub mod pending;
pub mod preflight;
pub mod providers;
pub mod proxy;
pub mod ratelimit;
pub mod request_id;
pub mod routes;
pub mod session;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod users;
pub mod v1;
