//! Users of the bundled auth backend: validated input types, password hashing, the
//! repository and the passkeys' table.

pub mod domain;
pub mod hashing;
pub mod passkeys;
pub mod repo;

pub use domain::{Email, Identifier, Name, Password, Username};
pub use repo::{User, UserRepo};
