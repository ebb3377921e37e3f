//! The bundled account API under `/v1` (tags `Auth` and `Users`): register, sign in,
//! tokens, passwords and the profile, authenticated by Bearer JWT.

pub mod auth;
pub mod models;
pub mod security;
pub mod users;
