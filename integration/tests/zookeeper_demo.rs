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
    assert!(report.jobs_missing.is_empty() && report.jobs_duplicated.is_empty());
    assert!(
        report.jobs_unexpected.is_empty(),
        "jobs recorded that were never enqueued: {:?}",
        report.jobs_unexpected
    );
    assert!(report.jobs_done >= report.jobs_put);
    assert!(report.terms.len() >= 2 && report.terms.windows(2).all(|w| w[1].1 > w[0].1));
    assert!(report.enqueue_tokens_monotonic);
    assert_eq!(report.saw_new_greeting.len(), report.greeters_at_change);
    assert!(report.ok());
}
