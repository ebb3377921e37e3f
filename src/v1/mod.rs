//! The bundled account API under `/v1` (tags `Auth`, `Users`, `Passkeys`): register, sign
//! in, tokens, passwords, the profile and passkeys, authenticated by Bearer JWT.

pub mod auth;
pub mod models;
pub mod passkeys;
pub mod security;
pub mod users;
