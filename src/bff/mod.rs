//! The browser-facing API under `/api/auth`: NextAuth v4's REST protocol (so
//! `next-auth/react` works unchanged) plus our additions (register, my sessions,
//! sign out everywhere, passkey sign-in).

pub mod current;
pub mod endpoints;
pub mod logout;
pub mod models;
pub mod pages;
pub mod passkeys;
pub mod redirect;
pub mod sessions;
pub mod signin;

pub use endpoints::NextAuthApi;
