//! Shared support for the integration tests: real servers as child processes on free loopback
//! ports with temp dirs, readiness waits, and process control (kill, pause, restart).

pub mod curator;
pub mod etcd;
pub mod process;
pub mod proxy;
pub mod safety;
pub mod zookeeper;

/// Prints the backends' tracing in tests when `MENAGERIE_TEST_LOG` names a level (`debug`, …).
pub fn init_test_logs() {
    if let Ok(level) = std::env::var("MENAGERIE_TEST_LOG") {
        let level = level.parse().unwrap_or(tracing::Level::DEBUG);
        let _ = tracing_subscriber::fmt()
            .with_max_level(level)
            .with_test_writer()
            .try_init();
    }
}
