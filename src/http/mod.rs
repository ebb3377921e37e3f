//! Web glue shared by every route group: the server loop, and the middleware that gives
//! every answer the same security headers and CORS rules.

pub mod api_error;
pub mod body_limit;
pub mod client_ip;
mod connection;
pub mod cors;
pub mod fast_json;
pub mod forms;
pub mod headers;
pub mod html;
pub mod lean;
pub mod observe;
pub mod server;
pub mod session;
pub mod tags;
