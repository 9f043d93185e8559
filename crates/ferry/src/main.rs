//! The `ferry` binary: parses the command line and hands over to `commands`.

mod bench;
mod cli;
mod commands;
mod demo;
mod fake;
mod logging;
mod prng;
mod server;
mod settings;

fn main() -> std::process::ExitCode {
    commands::main(<cli::Cli as clap::Parser>::parse())
}
