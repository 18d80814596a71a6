//! The whole conformance kit against a real standalone ZooKeeper 3.8 (one server shared by the
//! tests of this binary). `MENAGERIE_TEST_LOG=debug` prints the backend's tracing.

use menagerie_integration::zookeeper::shared_standalone;
use menagerie_zookeeper::{ZkFactory, ZkOptions};
use std::time::Duration;

fn init_logs() {
    if let Ok(level) = std::env::var("MENAGERIE_TEST_LOG") {
        let level = level.parse().unwrap_or(tracing::Level::DEBUG);
        let _ = tracing_subscriber::fmt()
            .with_max_level(level)
            .with_test_writer()
            .try_init();
    }
}

/// Sessions of 4 s on the shared standalone server.
fn factory() -> ZkFactory {
    init_logs();
    ZkFactory::new(
        shared_standalone().connect_string(),
        ZkOptions::default().with_session_timeout(Duration::from_secs(4)),
    )
}

menagerie_core::conformance_tests!(factory());
