//! The gateway as its own process: sends a request per second to the least-loaded greeter.
//! `cargo run -p menagerie-examples --bin gateway -- --backend zk://127.0.0.1:2181`

use menagerie_examples::{backend_arg, say, services::Gateway};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let gateway = Gateway::start(menagerie::connect(&backend_arg()).await?).await?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                match gateway.request("world").await {
                    Ok((greeter, reply)) => say("gateway", format!("{greeter} answered {reply:?}")),
                    Err(e) => say("gateway", format!("request failed: {e}")),
                }
            }
        }
    }
}
