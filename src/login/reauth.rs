//! Re-authentication ("sudo mode"): changes to a user's second factor need a session that
//! signed in within the last [`SUDO_WINDOW`], or the password again. A stolen session that is
//! older cannot, by itself, replace or remove the second factor.

use std::net::IpAddr;
use std::time::Duration;

use secrecy::SecretString;

use super::{Login, LoginError};
use crate::auth::Session;
use crate::ids::UserId;
use crate::secret::Token;

/// How recent a sign-in must be for a sensitive change without the password.
pub const SUDO_WINDOW: Duration = Duration::from_secs(300);

impl Login {
    /// Lets the change go ahead if `session` signed in within [`SUDO_WINDOW`] and no password
    /// was sent; a password sent is always checked, as a counted login attempt (wrong:
    /// `InvalidCredentials`; over the login limits: `TooManyAttempts`). Without either:
    /// `ReauthenticationRequired`. A right password renews the session's sign-in time.
    pub async fn confirm_recent_sign_in(
        &self,
        session: &Session,
        token: &Token,
        password: Option<SecretString>,
        ip: IpAddr,
    ) -> Result<(), LoginError> {
        let Some(password) = password else {
            return match session.signed_in_within(SUDO_WINDOW, crate::timestamp::now()) {
                true => Ok(()),
                false => Err(LoginError::ReauthenticationRequired),
            };
        };
        let record = self
            .check_password(ip, &session.email, password, "reauthentication")
            .await?;
        if UserId::from(record.id) != session.user_id {
            // The email now names another account: this session's user cannot prove anything.
            return Err(LoginError::InvalidCredentials);
        }
        self.sessions.mark_reauthenticated(token, session).await;
        Ok(())
    }
}
