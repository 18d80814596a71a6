//! Safety scenarios on a 3-member ZooKeeper ensemble with members killed (leader and followers)
//! and sessions expired. Short by default; `MENAGERIE_SOAK_SECS=60` runs the long soak.

use menagerie_integration::safety::{self, Table, ZkFaults};
use menagerie_integration::zookeeper::ZkCluster;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safety_on_zookeeper_ensemble() {
    if !menagerie_integration::zookeeper::available() {
        panic!(
            "ZooKeeper is not installed: run .ci/run, which installs Debian's zookeeper package"
        );
    }
    let run = safety::duration(Duration::from_secs(6));
    let every = Duration::from_millis(800);
    let mut cluster = Some(ZkCluster::ensemble(3).expect("start a 3-member ensemble"));
    let mut rows = Vec::new();
    for (i, scenario) in ["lock", "election", "queue-ack", "queue-take"]
        .iter()
        .enumerate()
    {
        let c = cluster.take().expect("cluster");
        let factory = menagerie_zookeeper::ZkFactory::new(
            c.connect_string(),
            menagerie_zookeeper::ZkOptions {
                session_timeout: Duration::from_secs(4),
                ..Default::default()
            },
        );
        let n = match *scenario {
            "lock" => 8,
            "election" => 3,
            _ => 5,
        };
        let base = format!("/safety-{i}");
        let (mut clients, admin) = safety::clients_from(&factory, n, &base).await;
        let mut faults = ZkFaults {
            cluster: c,
            factory,
            clients: clients.clone(),
        };
        let row = match *scenario {
            "lock" => {
                safety::lock_scenario("ZooKeeper ×3", clients, admin, run, every, &mut faults).await
            }
            "election" => {
                safety::election_scenario("ZooKeeper ×3", clients, admin, run, every, &mut faults)
                    .await
            }
            s => {
                let consumers = clients.split_off(2);
                let ack = s == "queue-ack";
                safety::queue_scenario(
                    "ZooKeeper ×3",
                    clients,
                    consumers,
                    admin,
                    ack,
                    run,
                    every,
                    &mut faults,
                )
                .await
            }
        };
        rows.push(row);
        cluster = Some(faults.cluster);
    }
    Table::print(&rows);
    for r in &rows {
        assert_eq!(r.violations, 0, "{}: {}", r.scenario, r.notes);
        assert!(r.operations > 0 && r.faults > 0, "{}: {r:?}", r.scenario);
    }
}
