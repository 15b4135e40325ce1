//! Backup codes: ten single-use codes a user keeps on paper for when the authenticator is lost.
//!
//! A code is 15 symbols of Crockford's base32 (75 random bits), shown in three groups of five
//! (`k7m2q-x9p4r-0d3fz`). Input is forgiving: case, dashes and spaces do not matter, and the
//! look-alikes `o`, `i` and `l` read as `0`, `1` and `1`. Only a keyed hash is stored:
//! `HMAC-SHA256(key derived from the master key, user id || normalized code)`, so a copy of the
//! database alone can neither read the codes nor test guesses offline. The hash is
//! deterministic, which lets one `DELETE … RETURNING` both find and spend a code atomically.

use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;

use crate::ids::UserId;
use crate::secret::MasterKey;

/// How many codes a user holds at a time.
pub const COUNT: usize = 10;
const GROUPS: usize = 3;
const GROUP_LEN: usize = 5;
const SYMBOLS: usize = GROUPS * GROUP_LEN;
/// Crockford's base32 alphabet: no `i`, `l`, `o` or `u`, so codes read back unambiguously.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
const KEY_LABEL: &str = "rampart/backup-codes/v1";

/// Fresh codes in their display form, each from the OS random generator.
pub fn generate() -> Vec<String> {
    let mut rng = rand::rngs::OsRng;
    (0..COUNT)
        .map(|_| {
            let symbols: Vec<u8> = (0..SYMBOLS)
                .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())])
                .collect();
            symbols
                .chunks(GROUP_LEN)
                .map(|g| std::str::from_utf8(g).expect("ASCII"))
                .collect::<Vec<_>>()
                .join("-")
        })
        .collect()
}

/// The canonical form of a typed code, or `None` when it cannot be one.
pub fn normalize(input: &str) -> Option<String> {
    let mut out = String::with_capacity(SYMBOLS);
    for c in input.chars() {
        let c = match c.to_ascii_lowercase() {
            '-' | ' ' => continue,
            'o' => '0',
            'i' | 'l' => '1',
            c => c,
        };
        if !c.is_ascii() || !ALPHABET.contains(&(c as u8)) {
            return None;
        }
        out.push(c);
    }
    (out.len() == SYMBOLS).then_some(out)
}

/// Hashes codes for one user. Built from the master key.
pub struct CodeHasher {
    key: [u8; 32],
}

impl std::fmt::Debug for CodeHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeHasher(..)")
    }
}

impl CodeHasher {
    pub fn new(master: &MasterKey) -> Self {
        CodeHasher {
            key: master.derive(KEY_LABEL),
        }
    }

    /// The stored form of a normalized code of `user`.
    pub fn hash(&self, user: UserId, normalized: &str) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(user.as_uuid().as_bytes());
        mac.update(normalized.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_distinct_codes_of_75_bits_in_three_groups() {
        let codes = generate();
        assert_eq!(codes.len(), COUNT);
        let distinct: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(distinct.len(), COUNT);
        for code in &codes {
            let groups: Vec<&str> = code.split('-').collect();
            assert_eq!(groups.len(), 3, "{code}");
            assert!(groups.iter().all(|g| g.len() == 5), "{code}");
            assert_eq!(
                normalize(code).as_deref(),
                Some(code.replace('-', "").as_str())
            );
        }
        // 15 symbols of 32 each: 15 × 5 = 75 bits, above the 60 required.
        const { assert!(SYMBOLS * 5 >= 60) };
    }

    #[test]
    fn typing_slips_are_forgiven_but_not_wrong_lengths() {
        assert_eq!(
            normalize(" ABCDE fghjk-MNPQR ").as_deref(),
            Some("abcdefghjkmnpqr")
        );
        assert_eq!(
            normalize("oooooIIIIILLLLL").as_deref(),
            Some("000001111111111")
        );
        assert_eq!(normalize("abcde-fghjk"), None);
        assert_eq!(normalize("abcde-fghjk-mnpqrs"), None);
        assert_eq!(
            normalize("abcde-fghjk-mnpqu"),
            None,
            "u is not in the alphabet"
        );
        assert_eq!(normalize("abcde-fghjk-mnpqé"), None);
    }

    #[test]
    fn hashes_are_keyed_and_bound_to_the_user() {
        use base64::Engine;
        let master = |b: u8| {
            crate::secret::decode_master_key(
                &base64::engine::general_purpose::STANDARD.encode([b; 32]),
            )
            .unwrap()
        };
        let (h1, h2) = (CodeHasher::new(&master(1)), CodeHasher::new(&master(2)));
        let (a, b) = (UserId::random(), UserId::random());
        let code = "abcdefghjkmnpqr";
        assert_eq!(h1.hash(a, code), h1.hash(a, code));
        assert_ne!(h1.hash(a, code), h1.hash(b, code));
        assert_ne!(h1.hash(a, code), h2.hash(a, code));
        assert_eq!(h1.hash(a, code).len(), 32);
    }
}
