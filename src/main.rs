//! The `rampart` command line: parses the arguments and the configuration, then runs
//! `rampart::commands` (its grammar, outputs and exit codes live there).

use std::process::ExitCode;

use clap::Parser;
use rampart::commands::{self, args::Cli, output::Exit};
use rampart::config::Config;

/// jemalloc rather than the system's allocator. The server allocates on one thread and frees
/// on another all the time (audit events and lines, mailbox messages, request and frame
/// buffers), which glibc's allocator does slowly; with jemalloc a WebSocket setup costs about a
/// third less CPU, the audit trail records about 1.4× as many events per second, and an idle
/// connection holds no more memory (docs/benchmarks.md, "The allocator").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return ExitCode::from(Exit::Usage as u8);
        }
    };
    commands::run(cli, config)
}
