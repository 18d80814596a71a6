//! The example system end to end on a real etcd, asserting on what happened.

use menagerie_examples::demo;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_clean_on_etcd() {
    let url = menagerie_integration::etcd::shared_single().url("/demo-run");
    let report = tokio::time::timeout(
        std::time::Duration::from_secs(240),
        demo::run(&url, demo::Options::default()),
    )
    .await
    .expect("the demo ends by itself")
    .expect("the demo runs");
    report.print();
    report.assert_clean();
}
