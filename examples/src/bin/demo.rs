//! The README's first command: `cargo run -p menagerie-examples --bin demo`.
//!
//! A small system on the embedded native backend, built only from menagerie's public API:
//! three `greeter` instances announce themselves with ephemeral-sequential nodes and read their
//! greeting from a watched config node; a `monitor` follows membership with child watches. The demo
//! changes the config, crashes one greeter (its session closes, its node vanishes), expires another
//! one's session (it notices and re-registers), and prints a summary.
//!
//! Pass `--backend URL` to run the same demo on another backend (e.g. `zk://127.0.0.1:2181`).

use menagerie::{connect, Client, CreateMode, Error, EventType, SessionState};
use std::time::Duration;
use tokio::sync::mpsc;

const SERVICE: &str = "/demo/services/greeter";
const CONFIG: &str = "/demo/config/greeting";

fn say(who: &str, what: impl AsRef<str>) {
    println!("[{who:>10}] {}", what.as_ref());
}

/// A greeter: registers, follows its config, re-registers after a session expiry.
async fn greeter(
    name: String,
    client: Client,
    mut stop: mpsc::Receiver<()>,
    seen: mpsc::UnboundedSender<(String, String)>,
) -> Result<(), Error> {
    let mut states = client.state_stream();
    register(&name, &client).await?;
    loop {
        let (greeting, _, watch) = client.get_and_watch(CONFIG).await?;
        let greeting = String::from_utf8_lossy(&greeting).to_string();
        say(&name, format!("serving with greeting {greeting:?}"));
        let _ = seen.send((name.clone(), greeting));
        tokio::select! {
            event = watch => match event {
                Ok(e) if e.event_type == EventType::NodeDataChanged => continue,
                Ok(e) => say(&name, format!("config event {:?}", e.event_type)),
                Err(Error::SessionExpired) => {}
                Err(e) => return Err(e),
            },
            state = states.next() => {
                if state == Some(SessionState::Expired) {
                    say(&name, "my session expired: my registration is gone");
                }
                if state == Some(SessionState::Connected) {
                    let me = register(&name, &client).await?;
                    say(&name, format!("back in service as {me}"));
                }
            },
            _ = stop.recv() => {
                say(&name, "stopping: closing my session, so my ephemeral registration vanishes");
                client.close().await?;
                return Ok(());
            }
        }
    }
}

async fn register(name: &str, client: &Client) -> Result<String, Error> {
    let node = client
        .create_all(
            &format!("{SERVICE}/instance-"),
            name.as_bytes(),
            CreateMode::EphemeralSequential,
        )
        .await?;
    say(name, format!("registered as {node}"));
    Ok(node)
}

/// Follows the service's members with child watches, reporting every change.
async fn monitor(client: Client, mut done: mpsc::Receiver<()>) -> Result<Vec<usize>, Error> {
    let mut sizes = Vec::new();
    client.ensure_path(SERVICE).await?;
    loop {
        let (kids, _, watch) = client.children_and_watch(SERVICE).await?;
        let mut names = Vec::new();
        for k in &kids {
            if let Ok((data, _)) = client.get(&format!("{SERVICE}/{k}")).await {
                names.push(String::from_utf8_lossy(&data).to_string());
            }
        }
        say(
            "monitor",
            format!("{} instance(s) live: {}", kids.len(), names.join(", ")),
        );
        sizes.push(kids.len());
        tokio::select! {
            event = watch => { event?; }
            _ = done.recv() => return Ok(sizes),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .iter()
        .position(|a| a == "--backend")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| "native:".to_string());
    println!("menagerie demo on {url}\n");

    let admin = connect(&url).await?;
    admin.delete_all("/demo").await?;
    admin
        .create_all(CONFIG, b"hello", CreateMode::Persistent)
        .await?;

    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
    let (done_tx, done_rx) = mpsc::channel(1);
    let watcher = tokio::spawn(monitor(connect(&url).await?, done_rx));
    let mut stops = Vec::new();
    let mut clients = Vec::new();
    let mut tasks = Vec::new();
    for i in 1..=3 {
        let client = connect(&url).await?;
        let (stop_tx, stop_rx) = mpsc::channel(1);
        stops.push(stop_tx);
        clients.push(client.clone());
        tasks.push(tokio::spawn(greeter(
            format!("greeter-{i}"),
            client,
            stop_rx,
            seen_tx.clone(),
        )));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(seen_tx);

    tokio::time::sleep(Duration::from_millis(200)).await;
    say("admin", "changing the greeting to \"bonjour\"");
    admin.set(CONFIG, b"bonjour", None).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;

    say("admin", "crashing greeter-3");
    stops[2].send(()).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;

    #[cfg(feature = "native")]
    if url.starts_with("native:") {
        let store = menagerie::native::shared_store("");
        let victim = clients[1].session_id();
        say(
            "admin",
            format!("expiring greeter-2's session 0x{victim:x}"),
        );
        store.expire(victim);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    done_tx.send(()).await?;
    let sizes = watcher.await??;
    for s in stops.iter().take(2) {
        let _ = s.send(()).await;
    }
    for t in tasks {
        t.await??;
    }
    let mut bonjour = std::collections::BTreeSet::new();
    while let Some((who, greeting)) = seen_rx.recv().await {
        if greeting == "bonjour" {
            bonjour.insert(who);
        }
    }
    println!("\nsummary:");
    println!("  membership sizes seen by the monitor: {sizes:?}");
    println!(
        "  instances that picked up the new greeting: {}",
        bonjour.len()
    );
    Ok(())
}
