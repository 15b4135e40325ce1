//! What can go wrong with an order, in the order's own terms; `error.rs` maps each case to its
//! HTTP status and contract code.

use super::Status;
use crate::db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// A value a client sent breaks a rule; `field` names it as the client wrote it
    /// (`items[2].quantity`).
    #[error("{reason}")]
    Invalid { field: String, reason: String },
    /// The status cannot go from `from` to `to`.
    #[error("cannot change status from {from} to {to}")]
    InvalidTransition { from: Status, to: Status },
    /// No such order in the scope's tenant (or a scope that names no tenant).
    #[error("not found")]
    NotFound,
    /// An order is written by a user, and the operator's door names none.
    #[error("an order needs an author, and this scope names no user")]
    NoAuthor,
    /// A bad `limit` or cursor of the list (400 `bad_request`).
    #[error(transparent)]
    Page(#[from] crate::page::PageError),
    #[error(transparent)]
    Db(DbError),
}

impl OrderError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> OrderError {
        OrderError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl From<DbError> for OrderError {
    fn from(e: DbError) -> OrderError {
        match e {
            DbError::NotFound => OrderError::NotFound,
            other => OrderError::Db(other),
        }
    }
}
