//! Other real ZooKeeper clients against menagerie-server: Python's kazoo (Debian's
//! python3-kazoo) and the Java command-line client zkCli.sh (Debian's zookeeper).

mod common;

use common::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs a command with a time limit; returns (success, stdout + stderr).
fn run_bounded(cmd: &mut Command, limit: Duration) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    (status.is_some_and(|s| s.success()), text)
}

fn python_with_kazoo() -> String {
    // Debian's interpreter has python3-kazoo; a python3 earlier on PATH (pyenv, venv) may not.
    for p in ["/usr/bin/python3", "python3"] {
        if Command::new(p)
            .args(["-c", "import kazoo"])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return p.to_string();
        }
    }
    panic!("kazoo is not installed: apt-get install python3-kazoo (.ci/run installs it)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kazoo_create_get_set_delete_children_watches_ephemerals_transactions() {
    let server = start_in_memory().await;
    let addr = server.local_addr().to_string();
    let python = python_with_kazoo();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kazoo_client.py");
    let (ok, out) = tokio::task::spawn_blocking(move || {
        run_bounded(
            Command::new(python).arg(script).arg(addr),
            Duration::from_secs(120),
        )
    })
    .await
    .unwrap();
    assert!(ok, "kazoo script failed:\n{out}");
    assert!(out.contains("checks passed"), "{out}");
    server.shutdown().await;
}

const ZKCLI: &str = "/usr/share/zookeeper/bin/zkCli.sh";

fn zkcli(addr: &str, args: &[&str]) -> String {
    assert!(
        Path::new(ZKCLI).exists(),
        "{ZKCLI} missing: apt-get install zookeeper (.ci/run installs it)"
    );
    let (ok, out) = run_bounded(
        Command::new(ZKCLI).arg("-server").arg(addr).args(args),
        Duration::from_secs(60),
    );
    assert!(ok, "zkCli.sh {args:?} failed:\n{out}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zkcli_create_ls_get_set_delete_deleteall() {
    let server = start_in_memory().await;
    let addr = server.local_addr().to_string();
    let a = addr.clone();
    tokio::task::spawn_blocking(move || {
        let out = zkcli(&a, &["create", "/cli", "hello"]);
        assert!(out.contains("Created /cli"), "{out}");
        zkcli(&a, &["create", "/cli/child", "c"]);
        zkcli(&a, &["create", "/cli/child/grandchild", "g"]);
        let out = zkcli(&a, &["ls", "/cli"]);
        assert!(out.contains("[child]"), "{out}");
        let out = zkcli(&a, &["get", "/cli"]);
        assert!(out.lines().any(|l| l.trim() == "hello"), "{out}");
        zkcli(&a, &["set", "/cli", "world"]);
        let out = zkcli(&a, &["get", "-s", "/cli"]);
        assert!(out.lines().any(|l| l.trim() == "world"), "{out}");
        assert!(out.contains("dataVersion = 1"), "{out}");
        zkcli(&a, &["delete", "/cli/child/grandchild"]);
        let out = zkcli(&a, &["ls", "/cli/child"]);
        assert!(out.contains("[]"), "{out}");
        zkcli(&a, &["create", "/cli/child/again", "x"]);
        zkcli(&a, &["deleteall", "/cli"]);
        let out = zkcli(&a, &["ls", "/"]);
        assert!(out.contains("[zookeeper]"), "{out}");
    })
    .await
    .unwrap();
    server.shutdown().await;
}
