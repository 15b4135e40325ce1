//! Authentication: argon2id passwords, opaque session tokens, and the request [`Principal`].

pub mod guard;
pub mod login;
pub mod password;
pub mod principal;
pub mod session;

pub use principal::{Access, Principal};
pub use session::{Role, SecondFactor, Session, SessionId, SessionStore};
