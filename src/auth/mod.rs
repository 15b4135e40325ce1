//! Authentication: argon2id passwords, opaque session tokens, and the request [`Principal`].

pub mod guard;
pub mod login;
pub mod password;
pub mod principal;
pub mod session;
pub mod sudo;
#[cfg(test)]
pub(crate) mod test_json;

pub use principal::{Access, Principal};
pub use session::{SecondFactor, Session, SessionId, SessionStore};
