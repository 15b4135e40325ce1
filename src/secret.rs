//! Secrets. The master key: 32 bytes that encrypt second-factor secrets at rest and sign audit
//! checkpoints, given as base64 in `RAMPART_MASTER_KEY` or generated once into
//! `RAMPART_DATA_DIR/master.key` (mode 0600, one line of base64). [`Token`]: every bearer
//! secret the server hands out. Neither prints in `Debug` output.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::RngCore;

mod token;

pub use token::{Token, TOKEN_LEN};

pub const MASTER_KEY_FILE: &str = "master.key";

/// The decoded master key. Its `Debug` output never shows the bytes.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

impl MasterKey {
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A 32-byte key for one purpose, `HMAC-SHA256(master, label)`. Each use of the master key
    /// takes its own label, so no two purposes ever share a key.
    pub fn derive(&self, label: &str) -> [u8; 32] {
        use hmac::{Hmac, Mac};
        let mut mac =
            Hmac::<sha2::Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(label.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// Decodes base64 of exactly 32 bytes.
pub fn decode_master_key(text: &str) -> Result<MasterKey, String> {
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(describe_base64_error)?;
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("must decode to 32 bytes, got {}", b.len()))?;
    Ok(MasterKey(key))
}

/// What is wrong with a key's base64, by position only: the decoder's own message quotes the
/// offending byte, which is a piece of the secret.
fn describe_base64_error(e: base64::DecodeError) -> String {
    use base64::DecodeError::*;
    match e {
        InvalidByte(at, _) => format!("not valid base64: a character at offset {at} is not base64"),
        InvalidLastSymbol(at, _) => {
            format!("not valid base64: the last character (offset {at}) is not canonical")
        }
        InvalidLength(len) => format!("not valid base64: {len} symbols is not a valid length"),
        InvalidPadding => "not valid base64: wrong padding".into(),
    }
}

/// Where the key came from, so start-up can warn when it was generated.
#[derive(Debug, PartialEq, Eq)]
pub enum KeySource {
    Environment,
    File,
    Generated,
}

/// Returns the configured key, or the one in `data_dir/master.key`, creating that file (0600)
/// when it does not exist yet.
pub fn load_or_create(
    configured: Option<&str>,
    data_dir: &Path,
) -> anyhow::Result<(MasterKey, KeySource)> {
    if let Some(text) = configured {
        let key =
            decode_master_key(text).map_err(|e| anyhow::anyhow!("RAMPART_MASTER_KEY: {e}"))?;
        return Ok((key, KeySource::Environment));
    }
    let path = data_dir.join(MASTER_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let key =
                decode_master_key(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            return Ok((key, KeySource::File));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
    std::fs::create_dir_all(data_dir)?;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    // create_new: two processes racing on a fresh data dir must not both write a key.
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| {
            writeln!(f, "{}", STANDARD.encode(bytes))?;
            f.sync_all()
        });
    match written {
        Ok(()) => Ok((MasterKey(bytes), KeySource::Generated)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_create(None, data_dir),
        Err(e) => Err(anyhow::anyhow!("cannot write {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_malformed_key_is_described_without_quoting_it() {
        // '~' (126) and 'é' are not base64; neither they nor their byte values may appear.
        for (bad, secret_bits) in [
            ("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd~h8=", ["~", "126"]),
            ("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdéh8=", ["é", "195"]),
        ] {
            let err = decode_master_key(bad).expect_err("rejected");
            assert!(err.contains("offset 40"), "{err}");
            for bit in secret_bits {
                assert!(!err.contains(bit), "{err} quotes {bit}");
            }
        }
        let short = decode_master_key("AAEC").expect_err("too short");
        assert!(short.contains("32 bytes"), "{short}");
    }

    #[test]
    fn generated_key_is_kept_private_and_reused() {
        let dir = std::env::temp_dir().join(format!("rampart-key-{}", uuid::Uuid::new_v4()));
        let (first, source) = load_or_create(None, &dir).unwrap();
        assert_eq!(source, KeySource::Generated);
        let mode = std::fs::metadata(dir.join(MASTER_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, source) = load_or_create(None, &dir).unwrap();
        assert_eq!(source, KeySource::File);
        assert_eq!(first.bytes(), again.bytes());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn derived_keys_differ_by_label_and_master() {
        let a = decode_master_key(&STANDARD.encode([1u8; 32])).unwrap();
        let b = decode_master_key(&STANDARD.encode([2u8; 32])).unwrap();
        assert_eq!(a.derive("x"), a.derive("x"));
        assert_ne!(a.derive("x"), a.derive("y"));
        assert_ne!(a.derive("x"), b.derive("x"));
        assert_ne!(&a.derive("x"), a.bytes());
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(decode_master_key(&STANDARD.encode([1u8; 31])).is_err());
        assert!(decode_master_key(&STANDARD.encode([1u8; 32])).is_ok());
    }
}
