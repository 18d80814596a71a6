//! Safety scenarios on the embedded native backend with session expiries and client partitions.
//! Short by default; `MENAGERIE_SOAK_SECS=60` runs the long soak.

use menagerie_integration::safety::{self, Table};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safety_on_native() {
    let run = safety::duration(Duration::from_secs(5));
    let every = Duration::from_millis(500);
    let mut rows = Vec::new();

    let (clients, admin, mut faults) = safety::native_clients(8, "/lock-safety").await;
    rows.push(safety::lock_scenario("native", clients, admin, run, every, &mut faults).await);

    let (clients, admin, mut faults) = safety::native_clients(3, "/election-safety").await;
    rows.push(safety::election_scenario("native", clients, admin, run, every, &mut faults).await);

    for ack in [true, false] {
        let (mut clients, admin, mut faults) = safety::native_clients(5, "/queue-safety").await;
        let consumers = clients.split_off(2);
        rows.push(
            safety::queue_scenario(
                "native",
                clients,
                consumers,
                admin,
                ack,
                run,
                every,
                &mut faults,
            )
            .await,
        );
    }
    Table::print(&rows);
    for r in &rows {
        assert_eq!(r.violations, 0, "{}: {}", r.scenario, r.notes);
        assert!(r.operations > 0, "{}: nothing was done", r.scenario);
        assert!(r.faults > 0, "{}: no fault was injected", r.scenario);
    }
}
