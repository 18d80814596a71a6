//! The demo end to end on the embedded native backend, asserting on what happened.

use menagerie_examples::demo;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_clean_on_native() {
    let report = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        demo::run("native:demo-test", demo::Options::default()),
    )
    .await
    .expect("the demo ends by itself")
    .expect("the demo runs");
    report.print();
    report.assert_clean();
}
