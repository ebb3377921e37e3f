//! Web glue shared by every route group: the server loop, and the middleware that gives
//! every answer the same security headers and CORS rules.

pub mod api_error;
pub mod cors;
pub mod headers;
pub mod server;
