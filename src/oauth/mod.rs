//! The authorization server's routes (`/oauth/*`, `/manage-apps`, `/.well-known/*`): its
//! pages and JSON endpoints. The server itself — the protocol's rules, its tables and
//! keys — is [`crate::oauth_server`].

mod authorize;
pub mod endpoints;
pub mod logout;
pub mod models;
pub mod pages;
pub mod signer;

pub use endpoints::OAuthApi;
pub use logout::OpLogoutApi;
