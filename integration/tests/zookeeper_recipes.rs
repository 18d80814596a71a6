//! Every recipe test (locks, election, queue, barriers, caches, config, discovery, balancing)
//! against a real standalone ZooKeeper 3.8.

use menagerie_integration::zookeeper::shared_standalone;
use menagerie_zookeeper::{ZkFactory, ZkOptions};
use std::time::Duration;

fn factory() -> ZkFactory {
    ZkFactory::new(
        shared_standalone().connect_string(),
        ZkOptions::default().with_session_timeout(Duration::from_secs(4)),
    )
}

menagerie_recipes::recipe_tests!(factory());
