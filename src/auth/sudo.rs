//! Re-authentication ("sudo mode"): changes to a user's second factor need a session that
//! signed in within the last [`SUDO_WINDOW`], or the password again. A stolen session that is
//! older cannot, by itself, replace or remove the second factor.

use std::net::IpAddr;
use std::time::Duration;

use chrono::Utc;

use super::{login, Principal};
use crate::error::ApiError;
use crate::state::AppState;

/// How recent a sign-in must be for a sensitive change without the password.
pub const SUDO_WINDOW: Duration = Duration::from_secs(300);

/// Lets the change go ahead if the session signed in within [`SUDO_WINDOW`] and no password
/// was sent; a password sent is always checked, as a counted login attempt (wrong: 401
/// `invalid_credentials`; over the login limits: 429). Without either: 401
/// `reauthentication_required`. A right password renews the session's sign-in time.
pub async fn confirm(
    state: &AppState,
    p: &Principal,
    password: Option<String>,
    ip: IpAddr,
) -> Result<(), ApiError> {
    let Some(password) = password else {
        return match p.session.signed_in_within(SUDO_WINDOW, Utc::now()) {
            true => Ok(()),
            false => Err(ApiError::ReauthenticationRequired),
        };
    };
    let email = &p.session.email;
    let record = login::check_password(state, ip, email, password, "reauthentication").await?;
    if crate::ids::UserId::from(record.id) != p.session.user_id {
        // The email now names another account: this session's user cannot prove anything.
        return Err(ApiError::InvalidCredentials);
    }
    state
        .sessions
        .mark_reauthenticated(&p.token, &p.session)
        .await;
    Ok(())
}
