//! [`Token`]: the one type of every bearer secret the server hands out — session tokens,
//! WebSocket tickets, login challenges. 256 random bits, written as 43 characters of unpadded
//! base64url. The server keeps only a token's SHA-256 ([`Token::digest_hex`]); the clear text
//! exists in memory for one request and never in a log: `Debug` prints `[redacted]`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};

/// Length of a token's text: 32 bytes in unpadded base64url.
pub const TOKEN_LEN: usize = 43;

/// A bearer secret. Built by [`Token::generate`] (to hand out) or [`Token::parse`] (from a
/// request, checked for the shape every issued token has, so nothing else reaches a lookup).
#[derive(Clone)]
pub struct Token(SecretString);

impl Token {
    /// A fresh token from the operating system's generator.
    pub fn generate() -> Token {
        let mut raw = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        Token(URL_SAFE_NO_PAD.encode(raw).into())
    }

    /// A token presented by a client, if it has the shape of one this server issues; anything
    /// else (another length, other characters) can name nothing stored.
    pub fn parse(text: &str) -> Option<Token> {
        let well_formed = text.len() == TOKEN_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        well_formed.then(|| Token(text.into()))
    }

    /// The SHA-256 of the token's text, in hex: how the server names it in storage.
    pub fn digest_hex(&self) -> String {
        hex::encode(Sha256::digest(self.expose().as_bytes()))
    }

    /// The clear text, to send to its holder once (response bodies, cookies).
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token([redacted])")
    }
}

impl PartialEq for Token {
    fn eq(&self, other: &Token) -> bool {
        use subtle::ConstantTimeEq;
        self.expose()
            .as_bytes()
            .ct_eq(other.expose().as_bytes())
            .into()
    }
}

impl Eq for Token {}

/// A token serializes as its clear text: only the responses that hand it to its holder
/// contain one.
impl Serialize for Token {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.expose())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_tokens_parse_and_differ() {
        let (a, b) = (Token::generate(), Token::generate());
        assert_ne!(a, b);
        assert_eq!(Token::parse(a.expose()), Some(a.clone()));
        assert_eq!(a.digest_hex().len(), 64);
    }

    #[test]
    fn debug_never_shows_the_text() {
        let t = Token::generate();
        let shown = format!("{t:?} {:?}", Some(&t));
        assert!(!shown.contains(t.expose()), "{shown}");
        assert!(shown.contains("[redacted]"));
    }

    proptest! {
        /// Only strings of the issued shape parse; nothing panics.
        #[test]
        fn only_issued_shapes_parse(text in ".{0,60}") {
            let shaped = text.len() == TOKEN_LEN
                && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            prop_assert_eq!(Token::parse(&text).is_some(), shaped);
        }
    }
}
