//! The whole conformance kit through the ZooKeeper backend (menagerie-zookeeper, on the
//! `zookeeper-client` crate) against menagerie-server: once against an in-memory server, once
//! against a durable one (fsync always), each shared by the tests of this binary.

use menagerie_native::server::{Server, ServerConfig, Storage};
use menagerie_zookeeper::{ZkFactory, ZkOptions};
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

/// A server on its own runtime thread, serving for the life of the test binary.
fn spawn_server(storage: Storage) -> SocketAddr {
    {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("menagerie-server".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("server runtime");
                rt.block_on(async move {
                    let config = ServerConfig {
                        listen: "127.0.0.1:0".parse().unwrap(),
                        storage,
                        tick_time_ms: 200,
                        ..ServerConfig::default()
                    };
                    let server = Server::start(config).await.expect("start the server");
                    tx.send(server.local_addr()).expect("report the address");
                    // Serve until the test process exits.
                    std::future::pending::<()>().await;
                });
            })
            .expect("server thread");
        rx.recv_timeout(Duration::from_secs(20))
            .expect("server started")
    }
}

/// Sessions of 4 s on `addr`.
fn factory(addr: SocketAddr) -> ZkFactory {
    ZkFactory::new(
        addr.to_string(),
        ZkOptions::default().with_session_timeout(Duration::from_secs(4)),
    )
}

fn in_memory() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| spawn_server(Storage::InMemory))
}

fn durable() -> SocketAddr {
    static ADDR: OnceLock<(SocketAddr, tempfile::TempDir)> = OnceLock::new();
    ADDR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        (
            spawn_server(Storage::Directory(dir.path().join("data"))),
            dir,
        )
    })
    .0
}

mod in_memory {
    menagerie_core::conformance_tests!(super::factory(super::in_memory()));
}

mod durable {
    menagerie_core::conformance_tests!(super::factory(super::durable()));
}
