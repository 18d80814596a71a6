//! Interop with Apache Curator on a real ZooKeeper: a Java process running Curator's
//! `InterProcessMutex` (Debian's libcurator-recipes-java) and menagerie's `Mutex` contend for the
//! same lock path. Each, while holding the lock, creates an ephemeral marker node; finding it
//! already there means both held the lock at once. Neither may ever see it.

use menagerie_core::{Client, CreateMode, Error};
use menagerie_integration::curator;
use menagerie_integration::zookeeper::shared_standalone;
use menagerie_recipes::Mutex;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curator_and_menagerie_never_hold_the_lock_together() {
    assert!(
        Path::new("/usr/share/java/curator-recipes.jar").exists(),
        "Curator is not installed: .ci/run installs Debian's libcurator-recipes-java"
    );
    let dir = tempfile::tempdir().unwrap();
    curator::compile("CuratorMutexContender", dir.path()).expect("compile the Curator contender");

    let zk = shared_standalone();
    let iterations = 150;
    let mut java =
        tokio::process::Command::from(curator::java("CuratorMutexContender", dir.path()))
            .arg(zk.connect_string())
            .arg("/interop/lock")
            .arg("/interop/inside")
            .arg(iterations.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start java");
    let mut lines = BufReader::new(java.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("Curator starts")
        .expect("read")
        .unwrap_or_default();
    assert_eq!(ready, "READY");

    let client = Client::new(
        menagerie_zookeeper::ZkFactory::new(zk.connect_string(), Default::default())
            .backend()
            .await
            .map(std::sync::Arc::new)
            .expect("connect"),
    );
    client.ensure_path("/interop").await.unwrap();
    let lock = Mutex::new(&client, "/interop/lock");
    let mut violations = 0;
    for _ in 0..iterations {
        let g = lock.acquire().await.expect("acquire");
        match client
            .create("/interop/inside", b"menagerie", CreateMode::Ephemeral)
            .await
        {
            Ok(_) => {
                tokio::time::sleep(Duration::from_millis(1)).await;
                client
                    .delete("/interop/inside", None)
                    .await
                    .expect("delete marker");
            }
            Err(Error::NodeExists { .. }) => violations += 1,
            Err(e) => panic!("marker: {e}"),
        }
        g.release().await.expect("release");
    }
    let mut done = String::new();
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_secs(120), lines.next_line()).await
    {
        if line.starts_with("DONE") {
            done = line;
            break;
        }
    }
    let parts: Vec<&str> = done.split_whitespace().collect();
    assert_eq!(parts.len(), 3, "Curator did not finish: {done:?}");
    assert_eq!(parts[1], iterations.to_string());
    assert_eq!(parts[2], "0", "Curator saw menagerie inside the lock");
    assert_eq!(violations, 0, "menagerie saw Curator inside the lock");
    let _ = java.wait().await;
}
