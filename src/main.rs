//! The `rampart` command line: parses the arguments and the configuration, then runs
//! `rampart::commands` (its grammar, outputs and exit codes live there).

use std::process::ExitCode;

use clap::Parser;
use rampart::commands::{self, args::Cli, output::Exit};
use rampart::config::Config;

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
