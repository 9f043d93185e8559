//! The `ferry` binary: parses the command line and hands over to `commands`.

mod bench;
mod cli;
mod commands;
mod demo;
mod demo_bulk;
mod demo_salesforce;
mod fake;
mod logging;
mod prng;
mod server;
mod settings;

/// mimalloc: imports and exports allocate many small strings on several threads, where glibc's
/// allocator spent a fifth of the import's time.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    commands::main(<cli::Cli as clap::Parser>::parse())
}
