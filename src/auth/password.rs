//! Password hashing with argon2id. Hashing is deliberately slow and takes about 19 MiB of
//! memory per computation (the argon2 defaults), so callers on the request path go through
//! [`verify_bounded`]: it runs on the blocking pool, never on an async worker, and at most
//! [`PERMITS_PER_CORE`] per core at a time, with a bounded queue in front.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::distributions::{Alphanumeric, DistString};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

/// Why a password could not be checked (it was neither right nor wrong).
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The process's argon2 queue is full (503 `busy`).
    #[error("the server is busy checking other sign-ins; retry shortly")]
    Busy { retry_after_secs: u64 },
    /// The computation could not run to its end (the blocking pool or the gate went away).
    #[error("password check did not complete: {0}")]
    Unfinished(String),
}

/// Length of generated passwords (alphanumeric, about 119 bits).
const GENERATED_LEN: usize = 20;

/// Hashes `password` with argon2id and a random salt (PHC string format).
pub fn hash(password: &str) -> anyhow::Result<String> {
    map_large_allocations();
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing password: {e}"))
}

/// Checks `password` against a stored hash. `None` (unknown email) is checked against a fixed
/// dummy hash, so a wrong email costs the same time as a wrong password.
pub fn verify(password: &str, stored: Option<&str>) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash("rampart-dummy-password").expect("argon2 works"));
    let (candidate, known) = match stored {
        Some(h) => (h, true),
        None => (dummy.as_str(), false),
    };
    let ok = PasswordHash::new(candidate)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false);
    ok && known
}

/// Bounds the argon2 work of the whole process: `permits` computations run at once (each
/// holds its ~19 MiB only while it runs), up to `max_waiting` more wait their turn, and beyond
/// that a request is refused at once (503 `busy`). One per process, not per server, because
/// the memory it protects is the process's.
pub struct Gate {
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
}

/// Concurrent computations per core: argon2 is CPU-bound, so more would only queue in the
/// blocking pool while holding memory.
const PERMITS_PER_CORE: usize = 2;
/// Waiting computations per permit; at about 50 ms each the last waits about a second.
const WAITING_PER_PERMIT: usize = 16;

impl Gate {
    pub fn new(permits: usize, max_waiting: usize) -> Gate {
        Gate {
            permits: Arc::new(Semaphore::new(permits)),
            waiting: AtomicUsize::new(0),
            max_waiting,
        }
    }

    /// The process's gate, sized from the cores.
    pub fn global() -> &'static Gate {
        static GATE: OnceLock<Gate> = OnceLock::new();
        GATE.get_or_init(|| {
            map_large_allocations();
            let permits =
                PERMITS_PER_CORE * std::thread::available_parallelism().map_or(1, |n| n.get());
            Gate::new(permits, permits * WAITING_PER_PERMIT)
        })
    }

    /// A turn to hash: at once if a permit is free, after waiting if the queue has room, else
    /// `Busy`.
    pub async fn enter(&self) -> Result<tokio::sync::OwnedSemaphorePermit, PasswordError> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Ok(permit);
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(PasswordError::Busy {
                retry_after_secs: 1,
            });
        }
        // Leaves the queue however the wait ends (the request may be dropped meanwhile).
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let _waiting = Waiting(&self.waiting);
        self.permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| PasswordError::Unfinished(e.to_string()))
    }
}

/// Makes glibc's allocator map every block of a mebibyte or more on its own and unmap it when
/// it is freed. glibc otherwise raises its mapping threshold after the first such free, and the
/// 19 MiB blocks of later argon2 computations are then carved from per-thread arenas and kept
/// there: 200 sign-ins left the process 1.3 GB larger although at most four hashes ran at a
/// time. With the threshold fixed, hashing memory is returned as soon as a hash ends, so the
/// process holds at most [`Gate::permits`] blocks.
///
/// This matters wherever the library runs on glibc's allocator (its tests, for one). The
/// `rampart` binary allocates with jemalloc (`src/main.rs`), which gives each such block an
/// extent of its own and reuses freed extents for the next hashes; there the call changes
/// nothing Rust allocates, and the bound holds as well (`tests/it/hashing_memory.rs` measures it
/// on a `rampart serve` process).
fn map_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: mallopt only changes the allocator's tunables; any thread may call it.
            unsafe {
                nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, 1 << 20);
            }
        });
    }
}

/// [`verify`] on the blocking pool, within the process's [`Gate`]. The permit travels with
/// the computation, so a request dropped while argon2 runs still holds it until argon2 ends.
pub async fn verify_bounded(
    password: SecretString,
    stored: Option<String>,
) -> Result<bool, PasswordError> {
    let permit = Gate::global().enter().await?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        verify(password.expose_secret(), stored.as_deref())
    })
    .await
    .map_err(|e| PasswordError::Unfinished(e.to_string()))
}

/// A random password for users created without one.
pub fn generate() -> String {
    Alphanumeric.sample_string(&mut rand::rngs::OsRng, GENERATED_LEN)
}

/// Minimal password policy for passwords people choose.
pub fn check_policy(password: &str) -> Result<(), &'static str> {
    if password.chars().count() < 12 {
        return Err("password must be at least 12 characters");
    }
    if password.len() > 1024 {
        return Err("password must be at most 1024 bytes");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    #[test]
    fn hashes_verify_and_are_argon2id() {
        let h = hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", Some(&h)));
        assert!(!verify("wrong", Some(&h)));
        assert!(!verify("rampart-dummy-password", None));
    }

    #[actix_web::test]
    async fn the_gate_runs_its_permits_queues_the_next_and_refuses_beyond() {
        let gate = Gate::new(1, 1);
        let running = gate.enter().await.expect("a free permit");
        let queued = gate.enter();
        futures_util::pin_mut!(queued);
        // Polled once: it waits in the queue.
        assert!(queued.as_mut().now_or_never().is_none());
        let refused = gate.enter().await;
        assert!(matches!(
            refused,
            Err(PasswordError::Busy {
                retry_after_secs: 1
            })
        ));
        drop(running);
        let _turn = queued.await.expect("the queued one runs next");
        // The queue is empty again: one more may wait.
        let waiting = gate.enter();
        futures_util::pin_mut!(waiting);
        assert!(waiting.as_mut().now_or_never().is_none());
    }

    #[test]
    fn generated_passwords_differ_and_pass_the_policy() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert!(check_policy(&a).is_ok());
        assert!(check_policy("short").is_err());
    }
}
