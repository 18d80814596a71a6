//! One scheduler as its own process: `cargo run -p menagerie-examples --bin scheduler -- --backend zk://127.0.0.1:2181 --name scheduler-1`.
//! Start two: only the leader enqueues jobs; kill it and the other takes over with a newer token.

use menagerie_examples::{arg, backend_arg, services};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = arg("--name").unwrap_or_else(|| format!("scheduler-{}", std::process::id()));
    let client = menagerie::connect(&backend_arg()).await?;
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let running = services::scheduler(
        client,
        &name,
        Duration::from_millis(500),
        services::budget(u64::MAX),
        tx,
    )
    .await?;
    tokio::signal::ctrl_c().await?;
    running.kill().await;
    Ok(())
}
