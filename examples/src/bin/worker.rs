//! One worker as its own process: `cargo run -p menagerie-examples --bin worker -- --backend zk://127.0.0.1:2181 --name worker-1 --batch 2`.
//! Workers start together once `--batch` of them are ready, then process jobs from the queue.

use menagerie_examples::{arg, backend_arg, services};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = arg("--name").unwrap_or_else(|| format!("worker-{}", std::process::id()));
    let batch: usize = arg("--batch").and_then(|b| b.parse().ok()).unwrap_or(1);
    let client = menagerie::connect(&backend_arg()).await?;
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let running = services::worker(client, &name, batch, tx).await?;
    tokio::signal::ctrl_c().await?;
    running.kill().await;
    Ok(())
}
