//! What the command line prints and how it exits: one JSON document per command on stdout,
//! logs and errors on stderr, and the documented exit codes ([`Exit`]).

use std::io::{IsTerminal, Write};

use slog::{o, Drain, Level, Logger};

/// The exit codes (README "Operator CLI").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    /// The command failed (its error is on stderr), or `audit verify` found damage.
    Failed = 1,
    /// Bad usage (clap's own code) or a configuration error.
    Usage = 2,
    /// What the command names does not exist (a user, a ban, events in a range).
    NotFound = 3,
    /// No running server answered a `ban`/`session` request (EX_UNAVAILABLE); it was withdrawn
    /// and nothing was done. User and tenant commands never exit so: their change is made.
    NoServer = 69,
    /// Not finished, but it will be (EX_TEMPFAIL): a server took a `ban`/`session` request but
    /// had not finished when the wait ended; or a `user`/`tenant` change is made but its
    /// follow-up (audit event, live effect) waits for a server or for the audit log.
    Pending = 75,
}

/// A failure with its exit code; the message goes to stderr.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Failure {
        Failure {
            exit,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> anyhow::Error {
        Failure::new(Exit::Usage, message).into()
    }
}

/// `audit verify` found damage (its verdict is already printed).
#[derive(Debug, thiserror::Error)]
#[error("the audit log is damaged")]
pub struct Damaged;

/// The exit code of a command's outcome, printing its error (if any) on stderr.
pub fn exit_code(outcome: anyhow::Result<()>) -> u8 {
    match outcome {
        Ok(()) => Exit::Ok as u8,
        Err(e) if e.is::<Damaged>() => Exit::Failed as u8,
        Err(e) => match e.downcast_ref::<Failure>() {
            Some(f) => {
                eprintln!("error: {}", f.message);
                f.exit as u8
            }
            None => {
                eprintln!("error: {e:#}");
                Exit::Failed as u8
            }
        },
    }
}

/// Prints `value` as one line of JSON on stdout.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// The commands' logger: to stderr (stdout carries only their JSON), text on a terminal and
/// JSON lines otherwise.
pub fn stderr_logger(level: Level) -> Logger {
    let drain = if std::io::stderr().is_terminal() {
        let decorator = slog_term::TermDecorator::new().stderr().build();
        let term = slog_term::FullFormat::new(decorator).build().fuse();
        slog_async::Async::new(term).build().fuse()
    } else {
        let json = slog_json::Json::new(std::io::stderr())
            .add_default_keys()
            .build()
            .fuse();
        slog_async::Async::new(json).build().fuse()
    };
    Logger::root(drain.filter_level(level).fuse(), o!("service" => "rampart"))
}
