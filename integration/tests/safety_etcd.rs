//! Safety scenarios on a 3-member etcd cluster with members killed (leader and followers) and
//! sessions expired. Short by default; `MENAGERIE_SOAK_SECS=60` runs the long soak.

use menagerie_integration::etcd::{options, EtcdCluster};
use menagerie_integration::safety::{self, EtcdFaults};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safety_on_etcd_cluster() {
    let cluster = EtcdCluster::start(3).await;
    let factory = menagerie_etcd::EtcdFactory::new(options(&cluster, "/safety"));
    let mut faults = EtcdFaults {
        cluster,
        factory: factory.clone(),
        clients: Vec::new(),
    };
    let run = safety::duration(Duration::from_secs(6));
    let rows = safety::run_all(
        "etcd ×3",
        &factory,
        &mut faults,
        run,
        safety::cadence(Duration::from_millis(800)),
    )
    .await;
    safety::assert_clean(&rows);
}
