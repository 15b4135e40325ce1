//! RFC 6238 time-based one-time passwords as Rampart uses them: HMAC-SHA-1, 6 digits, 30-second
//! steps, one step of clock skew either way.
//!
//! The time is always a parameter (Unix seconds), never read here: the server passes the
//! current time and tests pass any time they like, through the same code path.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};
use rand::RngCore;
use subtle::{Choice, ConstantTimeEq};
use totp_rs::{Algorithm, Builder, Secret, Totp};

pub const DIGITS: u8 = 6;
pub const STEP_SECS: u64 = 30;
/// Steps accepted on each side of the current one: RFC 6238 §5.2 recommends at most one
/// (a clock off by up to 30 s, or a code typed just before its step ended).
pub const SKEW_STEPS: u64 = 1;
/// 160 bits, the length RFC 4226 §4 recommends.
pub const SECRET_BYTES: usize = 20;
pub const ISSUER: &str = "Rampart";

/// Characters kept as they are in the otpauth label: RFC 3986 unreserved ones. Everything else
/// (`@` included) is percent-encoded.
const LABEL: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A TOTP shared secret. Its `Debug` output never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret([u8; SECRET_BYTES]);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(..)")
    }
}

impl TotpSecret {
    /// 160 fresh bits from the operating system's random generator.
    pub fn generate() -> Self {
        let mut bytes = [0u8; SECRET_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        TotpSecret(bytes)
    }

    /// A secret from its raw bytes (after decryption); `None` unless exactly 20 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(TotpSecret)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Unpadded RFC 4648 base32, as authenticator apps expect it.
    pub fn to_base32(&self) -> String {
        Secret::new(Box::from(self.0.as_slice()))
            .to_base32()
            .trim_end_matches('=')
            .to_string()
    }

    /// The `otpauth://` URL that authenticator apps read from the QR code. Every parameter is
    /// spelled out, even the defaults, so no app has to guess.
    pub fn otpauth_url(&self, account: &str) -> String {
        format!(
            "otpauth://totp/{ISSUER}:{}?secret={}&issuer={ISSUER}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
            utf8_percent_encode(account, LABEL),
            self.to_base32(),
        )
    }
}

/// A six-digit code as a person typed it, parsed once at the edge. `Debug` hides the digits.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpCode(String);

impl std::fmt::Debug for TotpCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpCode(..)")
    }
}

impl TotpCode {
    /// Exactly six ASCII digits; spaces (apps show "123 456") are ignored.
    pub fn parse(input: &str) -> Option<Self> {
        let digits: String = input.chars().filter(|c| !c.is_whitespace()).collect();
        (digits.len() == DIGITS as usize && digits.bytes().all(|b| b.is_ascii_digit()))
            .then_some(TotpCode(digits))
    }
}

/// The generator for `secret`. The digit count is a parameter only so that the RFC 6238
/// test vectors (8 digits) run through this very code; the server always uses [`DIGITS`].
fn generator(secret: &TotpSecret, digits: u8) -> Totp {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(digits)
        .with_step_duration(STEP_SECS)
        .with_skew(0)
        .with_secret(secret.0.to_vec())
        .build()
        .expect("a 160-bit SHA-1 secret with 6 or 8 digits is valid")
}

fn code_with_digits(secret: &TotpSecret, digits: u8, unix_secs: u64) -> String {
    generator(secret, digits).generate(unix_secs).to_string()
}

/// The code for the step that contains `unix_secs`.
pub fn code_at(secret: &TotpSecret, unix_secs: u64) -> String {
    code_with_digits(secret, DIGITS, unix_secs)
}

/// The time step `unix_secs` falls in.
pub fn step_of(unix_secs: u64) -> u64 {
    unix_secs / STEP_SECS
}

/// The step whose code is `code`, looking one step each side of the one `unix_secs` falls in;
/// `None` when none matches. Every candidate is computed and compared in constant time, so the
/// answer's timing says nothing about which step (if any) matched. If two steps share a code
/// (a one-in-a-million coincidence) the later one wins, which keeps replay protection strict.
pub fn matching_step(secret: &TotpSecret, code: &TotpCode, unix_secs: u64) -> Option<u64> {
    let totp = generator(secret, DIGITS);
    let now = step_of(unix_secs);
    let mut found: Option<u64> = None;
    for step in now.saturating_sub(SKEW_STEPS)..=now + SKEW_STEPS {
        let candidate = totp.generate(step * STEP_SECS).to_string();
        let equal: Choice = candidate.as_bytes().ct_eq(code.0.as_bytes());
        if bool::from(equal) {
            found = Some(step);
        }
    }
    found
}

/// `text` as a QR code in SVG markup (dark modules on white, with the quiet zone).
pub fn qr_svg(text: &str) -> String {
    QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .expect("an otpauth URL fits in a QR code")
        .render::<svg::Color<'_>>()
        .min_dimensions(240, 240)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .quiet_zone(true)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B: the SHA-1 seed is the ASCII string "12345678901234567890".
    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890").unwrap()
    }

    const RFC_SHA1_VECTORS: [(u64, &str); 6] = [
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ];

    #[test]
    fn rfc_6238_appendix_b_sha1_vectors() {
        let secret = rfc_secret();
        for (time, expected) in RFC_SHA1_VECTORS {
            assert_eq!(code_with_digits(&secret, 8, time), expected, "T = {time}");
            // Six digits are the value modulo 10^6: the vector's last six digits.
            let six = &expected[2..];
            assert_eq!(code_at(&secret, time), six, "T = {time}");
            let code = TotpCode::parse(six).unwrap();
            assert_eq!(matching_step(&secret, &code, time), Some(step_of(time)));
        }
    }

    #[test]
    fn one_step_of_skew_each_way_and_no_more() {
        let secret = rfc_secret();
        let now = 1_234_567_890;
        for offset in [-1i64, 0, 1] {
            let then = (now as i64 + offset * STEP_SECS as i64) as u64;
            let code = TotpCode::parse(&code_at(&secret, then)).unwrap();
            assert_eq!(
                matching_step(&secret, &code, now),
                Some(step_of(then)),
                "offset {offset}"
            );
        }
        for offset in [-2i64, 2, -3, 3] {
            let then = (now as i64 + offset * STEP_SECS as i64) as u64;
            let code = TotpCode::parse(&code_at(&secret, then)).unwrap();
            assert_eq!(matching_step(&secret, &code, now), None, "offset {offset}");
        }
    }

    #[test]
    fn codes_are_parsed_strictly() {
        assert!(TotpCode::parse("123456").is_some());
        assert!(TotpCode::parse(" 123 456 ").is_some());
        for bad in ["12345", "1234567", "12345a", "+12345", "", "１２３４５６"] {
            assert!(TotpCode::parse(bad).is_none(), "{bad:?}");
        }
        assert_eq!(
            format!("{:?}", TotpCode::parse("123456").unwrap()),
            "TotpCode(..)"
        );
    }

    #[test]
    fn secrets_are_160_random_bits_in_unpadded_base32() {
        let (a, b) = (TotpSecret::generate(), TotpSecret::generate());
        assert_ne!(a, b);
        assert_eq!(a.as_bytes().len(), 20);
        let text = a.to_base32();
        assert_eq!(text.len(), 32);
        assert!(text
            .bytes()
            .all(|c| c.is_ascii_uppercase() || (b'2'..=b'7').contains(&c)));
        assert_eq!(format!("{a:?}"), "TotpSecret(..)");
        // RFC 4648 §10 test vector, to pin the alphabet.
        let rfc = TotpSecret::from_bytes(b"12345678901234567890").unwrap();
        assert_eq!(rfc.to_base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    }

    #[test]
    fn the_otpauth_url_spells_out_every_parameter() {
        let secret = rfc_secret();
        assert_eq!(
            secret.otpauth_url("ana+ops@platform.example"),
            "otpauth://totp/Rampart:ana%2Bops%40platform.example?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Rampart&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn the_qr_code_is_svg() {
        let svg = qr_svg("otpauth://totp/Rampart:a%40b.example?secret=AAAA");
        assert!(svg.contains("<svg") && svg.ends_with("</svg>"), "{svg}");
    }
}
