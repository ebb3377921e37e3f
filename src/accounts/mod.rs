//! The bundled auth backend's logic: JWTs and the account service behind `/v1`.

pub mod jwt;
pub mod passkeys;
pub mod passwords;
pub mod service;

pub use service::{AccountService, TokenPair};
