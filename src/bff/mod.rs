//! The browser-facing API under `/api/auth`: NextAuth v4's REST protocol (so
//! `next-auth/react` works unchanged) plus our additions (register, my sessions,
//! sign out everywhere).

pub mod api;
pub mod credentials;
pub mod oauth;
pub mod pages;
pub mod redirect;
pub mod sessions;

pub use credentials::CredentialsBackend;
