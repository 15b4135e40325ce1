//! Structured logs: JSON lines when stdout is not a terminal, readable text when it is.
//! Records are formatted on a dedicated thread (slog-async), so logging never blocks a worker
//! on terminal or pipe I/O.

use std::io::IsTerminal;

use slog::{o, Drain, Level, Logger};

/// Builds the root logger at `level`.
pub fn build(level: Level) -> Logger {
    let drain = if std::io::stdout().is_terminal() {
        let decorator = slog_term::TermDecorator::new().stdout().build();
        let term = slog_term::FullFormat::new(decorator).build().fuse();
        slog_async::Async::new(term).build().fuse()
    } else {
        let json = slog_json::Json::new(std::io::stdout())
            .add_default_keys()
            .build()
            .fuse();
        slog_async::Async::new(json).build().fuse()
    };
    Logger::root(drain.filter_level(level).fuse(), o!("service" => "rampart"))
}

/// A logger that drops everything (tests that do not look at logs).
pub fn discard() -> Logger {
    Logger::root(slog::Discard, o!())
}
