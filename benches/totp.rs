//! The server's TOTP check, next to a raw RFC 6238 computation.
//!
//! `cargo bench --bench totp`. Figures are in docs/benchmarks.md.
//!
//! - `totp/check_valid_now`: what the server does with a submitted code before it touches the
//!   database for the replay guard: parse the code, open the sealed secret (AES-256-GCM under
//!   a key derived from the master key), and compare the code with those of the three accepted
//!   steps in constant time (`two_factor::totp::matching_step`).
//! - `raw/hotp_three_steps`: three HMAC-SHA-1 codes computed directly (RFC 4226 dynamic
//!   truncation), with no decryption and no constant-time compare: the floor for the check.

use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rampart::ids::UserId;
use rampart::secret::decode_master_key;
use rampart::two_factor::secret_box::SecretBox;
use rampart::two_factor::totp::{self, TotpCode, TotpSecret, STEP_SECS};

/// The server's allocator (src/main.rs), so the code is measured as the server runs it.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn check(c: &mut Criterion) {
    let master = decode_master_key("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
    let user = UserId::random();
    let secret = TotpSecret::generate();
    let sealed = SecretBox::new(&master).seal(user, secret.as_bytes());
    let at = now();
    let typed = totp::code_at(&secret, at);

    let mut group = c.benchmark_group("totp");
    group.throughput(Throughput::Elements(1));
    group.bench_function("check_valid_now", |b| {
        b.iter(|| {
            let code = TotpCode::parse(black_box(&typed)).unwrap();
            let opened = SecretBox::new(&master)
                .open(user, black_box(&sealed))
                .unwrap();
            let secret = TotpSecret::from_bytes(&opened).unwrap();
            let step = totp::matching_step(&secret, &code, at);
            assert!(step.is_some());
            step
        })
    });
    group.finish();

    let key = secret.as_bytes().to_vec();
    let mut group = c.benchmark_group("raw");
    group.throughput(Throughput::Elements(1));
    group.bench_function("hotp_three_steps", |b| {
        b.iter(|| {
            let step = at / STEP_SECS;
            let mut found = false;
            for s in step - 1..=step + 1 {
                found |= hotp(black_box(&key), s) == typed;
            }
            assert!(found);
            found
        })
    });
    group.finish();
}

/// RFC 4226 HOTP with six digits, HMAC-SHA-1 built from `sha1_smol` (RFC 2104).
fn hotp(key: &[u8], counter: u64) -> String {
    let mut block = [0u8; 64];
    block[..key.len()].copy_from_slice(key);
    let pad = |byte: u8| -> Vec<u8> { block.iter().map(|k| k ^ byte).collect() };
    let mut inner = sha1_smol::Sha1::from(pad(0x36));
    inner.update(&counter.to_be_bytes());
    let mut outer = sha1_smol::Sha1::from(pad(0x5c));
    outer.update(&inner.digest().bytes());
    let mac = outer.digest().bytes();
    let offset = (mac[19] & 0x0f) as usize;
    let value = u32::from_be_bytes(mac[offset..offset + 4].try_into().unwrap()) & 0x7fff_ffff;
    format!("{:06}", value % 1_000_000)
}

criterion_group!(benches, check);
criterion_main!(benches);
