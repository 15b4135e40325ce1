//! An independent TOTP implementation for tests, written from RFC 4648 (base32), RFC 2104
//! (HMAC), RFC 4226 §5.3 (dynamic truncation) and RFC 6238 (time steps). It shares no code
//! with the server, so a server that agrees with it implements the standard, not just itself.

/// Decodes unpadded RFC 4648 base32.
pub fn base32_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut buffer, mut bits, mut out) = (0u64, 0u32, Vec::new());
    for c in text.trim_end_matches('=').bytes() {
        let value = ALPHABET
            .iter()
            .position(|&a| a == c.to_ascii_uppercase())
            .expect("base32 character") as u64;
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    out
}

/// HMAC-SHA-1 (RFC 2104): block size 64 bytes.
pub fn hmac_sha1(key: &[u8], message: &[u8]) -> [u8; 20] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..20].copy_from_slice(&sha1_smol::Sha1::from(key).digest().bytes());
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let mut inner = sha1_smol::Sha1::from(pad(0x36));
    inner.update(message);
    let mut outer = sha1_smol::Sha1::from(pad(0x5c));
    outer.update(&inner.digest().bytes());
    outer.digest().bytes()
}

/// The `digits`-digit code of `secret` for the time step containing `unix_secs`.
pub fn code_with_digits(secret: &[u8], unix_secs: u64, digits: u32) -> String {
    let counter = (unix_secs / 30).to_be_bytes();
    let mac = hmac_sha1(secret, &counter);
    let offset = (mac[19] & 0x0f) as usize;
    let binary = u32::from_be_bytes([
        mac[offset],
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]) & 0x7fff_ffff;
    format!(
        "{:0width$}",
        binary % 10u32.pow(digits),
        width = digits as usize
    )
}

/// The six-digit code of a base32 secret at `unix_secs`.
pub fn code(secret_base32: &str, unix_secs: u64) -> String {
    code_with_digits(&base32_decode(secret_base32), unix_secs, 6)
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Waits (at most a few seconds) until at least `secs` remain in the current 30-second step,
/// so a test that computes codes for "now" cannot straddle a step boundary.
pub async fn with_time_left_in_step(secs: u64) {
    while 30 - now() % 30 < secs {
        actix_web::rt::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
