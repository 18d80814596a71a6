//! One greeter as its own process: `cargo run -p menagerie-examples --bin greeter -- --backend zk://127.0.0.1:2181 --name greeter-1`.

use menagerie_examples::{arg, backend_arg, services};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = arg("--name").unwrap_or_else(|| format!("greeter-{}", std::process::id()));
    let client = menagerie::connect(&backend_arg()).await?;
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let running = services::greeter(client, &name, tx).await?;
    tokio::signal::ctrl_c().await?;
    running.kill().await;
    Ok(())
}
