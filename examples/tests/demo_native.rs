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
    // A leader killed between taking a job from the budget and enqueuing it loses that one job.
    assert!(
        report.jobs_put + report.jobs_uncertain >= 59,
        "jobs were enqueued"
    );
    assert!(
        report.jobs_missing.is_empty(),
        "jobs lost: {:?}",
        report.jobs_missing
    );
    assert!(
        report.jobs_duplicated.is_empty(),
        "jobs processed twice: {:?}",
        report.jobs_duplicated
    );
    assert!(
        report.jobs_unexpected.is_empty(),
        "jobs recorded that were never enqueued: {:?}",
        report.jobs_unexpected
    );
    assert!(report.jobs_done >= report.jobs_put);
    assert!(
        report.terms.len() >= 2,
        "the leader was killed and replaced"
    );
    assert!(
        report.terms.windows(2).all(|w| w[1].1 > w[0].1),
        "each term has a larger token"
    );
    assert!(
        report.enqueue_tokens_monotonic,
        "a deposed leader enqueued after its successor"
    );
    assert_eq!(
        report.saw_new_greeting.len(),
        report.greeters_at_change,
        "config change seen by all"
    );
    assert!(report.new_greeting_replies > 0);
    assert!(report.ok());
}
