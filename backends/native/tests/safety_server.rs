//! Safety scenarios (lock, election, queue) on menagerie-server while the server process is
//! SIGKILLed and restarted on its data directory and client sessions are expired. Checkers read a
//! server-side fenced log (see menagerie_integration::safety). `MENAGERIE_SOAK_SECS=60` for the
//! long soak.

use menagerie_core::async_trait;
use menagerie_core::Client;
use menagerie_integration::process::{free_port, wait_until, ServerProcess};
use menagerie_integration::safety::{self, Faults};
use menagerie_zookeeper::{ZkFactory, ZkOptions};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn spawn(port: u16, dir: &Path, round: usize) -> ServerProcess {
    let args: Vec<String> = [
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
        dir.to_str().unwrap(),
        "--fsync",
        "always",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let log = dir.parent().unwrap().join(format!("server-{round}.log"));
    ServerProcess::spawn(
        "menagerie-server",
        env!("CARGO_BIN_EXE_menagerie-server"),
        &args,
        &[],
        &log,
    )
    .expect("spawn menagerie-server")
}

async fn ready(port: u16) -> bool {
    menagerie_integration::zookeeper::ruok(&format!("127.0.0.1:{port}")).await
}

struct ServerFaults {
    port: u16,
    dir: PathBuf,
    server: Option<ServerProcess>,
    restarts: usize,
    factory: std::sync::Arc<ZkFactory>,
    clients: Vec<Client>,
}

impl ServerFaults {
    async fn restart(&mut self) {
        self.restarts += 1;
        self.server = Some(spawn(self.port, &self.dir, self.restarts));
        let port = self.port;
        assert!(
            wait_until(Duration::from_secs(30), || ready(port)).await,
            "menagerie-server did not come back"
        );
    }
}

#[async_trait]
impl Faults for ServerFaults {
    async fn inject(&mut self, round: usize) -> String {
        if round % 2 == 0 {
            if let Some(mut s) = self.server.take() {
                s.kill();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            self.restart().await;
            "server SIGKILLed and restarted".into()
        } else {
            safety::expire_one(&*self.factory, &self.clients).await
        }
    }

    async fn heal(&mut self) {
        if self.server.as_ref().map_or(true, |s| !s.is_alive()) {
            self.restart().await;
        }
    }
}

impl safety::FaultsWithClients for ServerFaults {
    fn set_clients(&mut self, clients: Vec<Client>) {
        self.clients = clients;
    }
    fn as_faults(&mut self) -> &mut dyn Faults {
        self
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safety_on_menagerie_server() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let factory = std::sync::Arc::new(ZkFactory::new(
        format!("127.0.0.1:{port}"),
        ZkOptions::default().with_session_timeout(Duration::from_secs(6)),
    ));
    let mut faults = ServerFaults {
        port,
        dir: tmp.path().join("data"),
        server: None,
        restarts: 0,
        factory: factory.clone(),
        clients: Vec::new(),
    };
    faults.restart().await;
    let run = safety::duration(Duration::from_secs(6));
    let rows = safety::run_all(
        "menagerie-server",
        &*factory,
        &mut faults,
        run,
        safety::cadence(Duration::from_millis(800)),
    )
    .await;
    safety::assert_clean(&rows);
}
