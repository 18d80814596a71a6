//! The example system end to end on a real ZooKeeper 3.8, asserting on what happened.

use menagerie_examples::demo;
use menagerie_integration::zookeeper::shared_standalone;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_clean_on_zookeeper() {
    let url = shared_standalone().url("/demo-run", Duration::from_secs(4));
    // The chroot must exist before clients confine themselves to it.
    let root = menagerie::connect(&shared_standalone().url("", Duration::from_secs(4)))
        .await
        .expect("connect");
    root.ensure_path("/demo-run").await.expect("chroot node");
    let report = tokio::time::timeout(
        Duration::from_secs(240),
        demo::run(&url, demo::Options::default()),
    )
    .await
    .expect("the demo ends by itself")
    .expect("the demo runs");
    report.print();
    report.assert_clean();
}
