//! Authentication: argon2id passwords, opaque session tokens, and the rules a session is
//! checked against (which tenant door it gets, who reaches platform routes, with the audited
//! versions in [`guard`]). Signing in is the `login` capability's; the HTTP extractor of the
//! caller (`Principal`) is the API's.

mod access;
pub mod activity;
mod error;
pub(crate) mod guard;
pub mod own_sessions;
pub(crate) mod password;
pub mod session;
#[cfg(test)]
pub(crate) mod test_json;

pub use error::AuthError;
pub use session::{IssuedToken, NewSession, SecondFactor, Session, SessionId, SessionStore};
