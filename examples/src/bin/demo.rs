//! The README's first command: `cargo run -p menagerie-examples --bin demo`.
//!
//! Runs the example system — greeters, a gateway, schedulers, workers — as tasks on the embedded
//! native backend (or on `--backend URL`), narrates what happens, kills and restarts a few things
//! on purpose, and prints a summary. Exits non-zero if a check failed.

use menagerie_examples::{backend_arg, demo};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = backend_arg();
    println!("menagerie demo on {url}\n");
    let report = demo::run(&url, demo::Options::default()).await?;
    report.print();
    if !report.ok() {
        std::process::exit(1);
    }
    Ok(())
}
