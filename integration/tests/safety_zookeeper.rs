//! Safety scenarios on a 3-member ZooKeeper ensemble with members killed (leader and followers)
//! and sessions expired. Short by default; `MENAGERIE_SOAK_SECS=60` runs the long soak.

use menagerie_integration::safety::{self, ZkFaults};
use menagerie_integration::zookeeper::ZkCluster;
use menagerie_zookeeper::{ZkFactory, ZkOptions};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safety_on_zookeeper_ensemble() {
    assert!(
        menagerie_integration::zookeeper::available(),
        "ZooKeeper is not installed: run .ci/run, which installs Debian's zookeeper package"
    );
    let cluster = ZkCluster::ensemble(3).expect("start a 3-member ensemble");
    let options = ZkOptions::default().with_session_timeout(Duration::from_secs(4));
    let factory = std::sync::Arc::new(ZkFactory::new(cluster.connect_string(), options));
    let mut faults = ZkFaults {
        cluster,
        factory: factory.clone(),
        clients: Vec::new(),
    };
    let run = safety::duration(Duration::from_secs(6));
    let rows = safety::run_all(
        "ZooKeeper ×3",
        &*factory,
        &mut faults,
        run,
        safety::cadence(Duration::from_millis(800)),
    )
    .await;
    safety::assert_clean(&rows);
}
