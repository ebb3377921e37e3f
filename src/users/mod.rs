//! Users of the bundled auth backend: validated input types, password hashing and the
//! repository.

pub mod domain;
pub mod hashing;
pub mod repo;

pub use domain::{Email, Identifier, Name, Password, Username};
pub use repo::{User, UserRepo};
