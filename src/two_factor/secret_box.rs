//! Second-factor secrets at rest: AES-256-GCM under a key derived from the master key.
//!
//! A sealed value is `version (1 byte) || nonce (12 bytes) || ciphertext and tag`. The nonce is
//! fresh from the OS generator for every encryption. The associated data names the purpose and
//! the owning user, so a ciphertext copied onto another user's row (or into another purpose)
//! fails authentication instead of decrypting.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use rand::RngCore;

use crate::ids::UserId;
use crate::secret::MasterKey;

/// Label of the key derived from the master key for these secrets.
const KEY_LABEL: &str = "rampart/two-factor-secrets/v1";
const VERSION: u8 = 1;
const NONCE_BYTES: usize = 12;

/// A sealed value did not open: wrong key, wrong user, or altered bytes.
#[derive(Debug, thiserror::Error)]
#[error("a stored second-factor secret cannot be decrypted")]
pub struct OpenError;

/// Encrypts and decrypts second-factor secrets. Its `Debug` output shows no key material.
pub struct SecretBox {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

fn associated_data(user: UserId) -> Vec<u8> {
    let mut aad = KEY_LABEL.as_bytes().to_vec();
    aad.extend_from_slice(user.as_uuid().as_bytes());
    aad
}

impl SecretBox {
    pub fn new(master: &MasterKey) -> Self {
        let key = master.derive(KEY_LABEL);
        SecretBox {
            cipher: Aes256Gcm::new(&key.into()),
        }
    }

    /// Encrypts `plaintext` for `user` under a fresh random nonce.
    pub fn seal(&self, user: UserId, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = associated_data(user);
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .expect("AES-GCM encrypts any input of this size");
        let mut out = Vec::with_capacity(1 + NONCE_BYTES + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Decrypts what [`seal`](Self::seal) produced for the same `user`.
    pub fn open(&self, user: UserId, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        let (&version, rest) = sealed.split_first().ok_or(OpenError)?;
        if version != VERSION || rest.len() < NONCE_BYTES {
            return Err(OpenError);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_BYTES);
        let aad = associated_data(user);
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| OpenError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> MasterKey {
        use base64::Engine;
        crate::secret::decode_master_key(
            &base64::engine::general_purpose::STANDARD.encode([byte; 32]),
        )
        .unwrap()
    }

    #[test]
    fn sealed_secrets_open_only_for_their_user_and_key() {
        let b = SecretBox::new(&key(7));
        let (alice, bob) = (UserId::random(), UserId::random());
        let sealed = b.seal(alice, b"twenty bytes secret!");
        assert_eq!(b.open(alice, &sealed).unwrap(), b"twenty bytes secret!");
        assert!(b.open(bob, &sealed).is_err(), "bound to its user");
        assert!(SecretBox::new(&key(8)).open(alice, &sealed).is_err());
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert!(b.open(alice, &altered).is_err());
        assert!(b.open(alice, &sealed[..5]).is_err());
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce_and_hides_the_plaintext() {
        let b = SecretBox::new(&key(7));
        let user = UserId::random();
        let (one, two) = (b.seal(user, b"same secret"), b.seal(user, b"same secret"));
        assert_ne!(one, two);
        assert_ne!(one[1..13], two[1..13]);
        assert!(!one.windows(11).any(|w| w == b"same secret"));
    }
}
