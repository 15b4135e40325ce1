//! Child processes that must never outlive the process that started them.
//!
//! Linux's parent-death signal (`PR_SET_PDEATHSIG`) is delivered when the *thread* that
//! forked the child exits, not when the process does. A server started from a short-lived
//! thread (a test, a `spawn_blocking` task) would therefore be killed as soon as that thread
//! finished. [`SupervisedChild`] spawns the child from a dedicated thread that lives exactly as
//! long as the child, so the signal fires only when our whole process dies (including by
//! `SIGKILL` or `abort`, where no destructor runs).

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::prctl;
use nix::sys::signal::{self, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag};
use nix::unistd::{getppid, Pid};

/// Makes the child receive `signal` when the thread spawning it exits.
///
/// The hook runs after std has switched uid/gid (which is required: the kernel clears the
/// parent-death signal on credential changes). It also closes the race where the parent died
/// between `fork` and `prctl`: the child would then have been re-parented already and the
/// signal would never come, so the spawn fails instead.
pub(crate) fn die_with_parent(cmd: &mut Command, signal: Signal) {
    let parent = Pid::this();
    // SAFETY: the closure only makes async-signal-safe system calls (prctl, getppid) and does
    // not allocate, as required between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            prctl::set_pdeathsig(signal).map_err(io::Error::from)?;
            if getppid() != parent {
                // ESRCH: "no such process", i.e. the parent is gone. Built from a raw errno
                // because allocating here could deadlock on a malloc lock.
                return Err(io::Error::from(Errno::ESRCH));
            }
            Ok(())
        });
    }
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Running,
    /// `None` when the status could not be collected (e.g. someone set `SIGCHLD` to
    /// `SIG_IGN`, which makes the kernel reap children itself).
    Exited(Option<ExitStatus>),
}

#[derive(Debug)]
struct Shared {
    phase: Mutex<Phase>,
    exited: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A child process owned by a dedicated supervisor thread.
///
/// The child gets a parent-death signal, so it cannot outlive this process. Signals are only
/// sent while the child is known not to be reaped yet, so they can never hit an unrelated
/// process that recycled the pid. Dropping a still-running child kills it with `SIGKILL`.
#[derive(Debug)]
pub struct SupervisedChild {
    pid: Pid,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl SupervisedChild {
    /// Spawns `cmd` from a new supervisor thread named after `name`; the child receives
    /// `death_signal` if this process dies.
    pub fn spawn(
        mut cmd: Command,
        death_signal: Signal,
        name: &str,
    ) -> io::Result<SupervisedChild> {
        die_with_parent(&mut cmd, death_signal);
        let shared = Arc::new(Shared {
            phase: Mutex::new(Phase::Running),
            exited: Condvar::new(),
        });
        let (tx, rx) = mpsc::channel();
        let thread_shared = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name(format!("{name}-supervisor"))
            .spawn(move || supervise(cmd, &thread_shared, &tx))?;
        match rx.recv() {
            Ok(Ok(pid)) => Ok(SupervisedChild {
                pid,
                shared,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(io::Error::other(format!(
                    "supervisor thread for {name} died before spawning it"
                )))
            }
        }
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.pid.as_raw().unsigned_abs()
    }

    /// Whether the child has exited (and been reaped).
    pub fn has_exited(&self) -> bool {
        matches!(*self.shared.lock(), Phase::Exited(_))
    }

    /// The exit status, once the child has exited and its status could be collected.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        match *self.shared.lock() {
            Phase::Running => None,
            Phase::Exited(status) => status,
        }
    }

    /// Sends `sig` to the child if it is still running; returns whether it was sent.
    pub fn signal(&self, sig: Signal) -> bool {
        let phase = self.shared.lock();
        // Holding the lock keeps the supervisor from reaping the child, so the pid is still
        // ours here even if the child already became a zombie.
        match *phase {
            Phase::Running => signal::kill(self.pid, sig).is_ok(),
            Phase::Exited(_) => false,
        }
    }

    /// Waits up to `timeout` for the child to exit; returns whether it did.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let phase = self.shared.lock();
        let (phase, _) = self
            .shared
            .exited
            .wait_timeout_while(phase, timeout, |p| matches!(p, Phase::Running))
            .unwrap_or_else(PoisonError::into_inner);
        matches!(*phase, Phase::Exited(_))
    }

    /// Kills the child with `SIGKILL` if it still runs and waits until it is gone.
    pub fn kill(&mut self) {
        self.signal(Signal::SIGKILL);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for SupervisedChild {
    fn drop(&mut self) {
        self.kill();
    }
}

type SpawnResult = io::Result<Pid>;

/// Body of the supervisor thread: spawn, report, then stay alive until the child is gone.
fn supervise(mut cmd: Command, shared: &Shared, tx: &mpsc::Sender<SpawnResult>) {
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            let _ = tx.send(Err(e));
            return;
        }
    };
    // Pids always fit in i32 on Linux (pid_max <= 2^22).
    let pid = Pid::from_raw(child.id() as i32);
    if tx.send(Ok(pid)).is_err() {
        // Nobody will ever manage this child; do not leave it running.
        let _ = child.kill();
    }
    // Wait without reaping: the pid stays reserved until we hold the lock below, so
    // `SupervisedChild::signal` can never target a recycled pid.
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT;
    while waitid(Id::Pid(pid), flags) == Err(Errno::EINTR) {}
    let mut phase = shared.lock();
    *phase = Phase::Exited(child.wait().ok());
    shared.exited.notify_all();
}
