//! Crash test: the `menagerie-server` binary is SIGKILLed at random moments while clients write;
//! after each restart every acknowledged write is there.

mod common;

use menagerie_integration::process::{free_port, wait_until, ServerProcess};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zkc::{Acls, CreateMode};
use zookeeper_client as zkc;

const ROUNDS: usize = 6;
const WRITERS: usize = 4;

fn opts() -> zkc::CreateOptions<'static> {
    CreateMode::Persistent.with_acls(Acls::anyone_all())
}

fn spawn(dir: &std::path::Path, port: u16, round: usize) -> ServerProcess {
    let logs = dir.parent().expect("data dir has a parent");
    let args: Vec<String> = [
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
        dir.to_str().unwrap(),
        "--fsync",
        "always",
        "--snapshot-every",
        "300",
        "--log-level",
        "debug",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    ServerProcess::spawn(
        "menagerie-server",
        env!("CARGO_BIN_EXE_menagerie-server"),
        &args,
        &[],
        &logs.join(format!("server-{round}.log")),
    )
    .expect("spawn menagerie-server")
}

async fn ready(port: u16) -> bool {
    menagerie_integration::zookeeper::ruok(&format!("127.0.0.1:{port}")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("crash test seed {seed}");
    let mut rng = common::Rng(seed);
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("data");
    let port = free_port();
    // Acknowledged value of each path, and a later value whose set was sent but not
    // acknowledged (it may or may not have been applied).
    let acked: Arc<Mutex<BTreeMap<String, Vec<u8>>>> = Arc::default();
    let in_flight: Arc<Mutex<BTreeMap<String, Vec<u8>>>> = Arc::default();
    let deadline = Instant::now() + Duration::from_secs(120);
    for round in 0..ROUNDS {
        assert!(Instant::now() < deadline, "crash test over its time budget");
        let mut server = spawn(&dir, port, round);
        assert!(
            wait_until(Duration::from_secs(20), || ready(port)).await,
            "server did not come up in round {round}: {}",
            server.log_tail(20)
        );
        let addr = format!("127.0.0.1:{port}");
        // Everything acknowledged so far is there, with its data.
        let checker = tokio::time::timeout(Duration::from_secs(20), zkc::Client::connect(&addr))
            .await
            .expect("connect in time")
            .expect("connect");
        let expected = acked.lock().unwrap().clone();
        let maybe = in_flight.lock().unwrap().clone();
        for (path, want) in &expected {
            match checker.get_data(path).await {
                Ok((got, _)) => assert!(
                    &got == want || maybe.get(path) == Some(&got),
                    "{path} has the wrong data after a crash: {got:?}, acknowledged {want:?}"
                ),
                Err(e) => panic!(
                    "acknowledged write {path} lost after SIGKILL (round {round}, seed {seed}): {e}\n{}",
                    server.log_tail(30)
                ),
            }
        }
        eprintln!(
            "round {round}: {} acknowledged writes verified",
            expected.len()
        );
        drop(checker);
        // Writers: creates and sets, each recorded once acknowledged.
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let acked = acked.clone();
            let in_flight = in_flight.clone();
            let addr = addr.clone();
            tasks.push(tokio::spawn(async move {
                let Ok(Ok(c)) = tokio::time::timeout(
                    Duration::from_secs(10),
                    zkc::Client::connector().with_fail_eagerly().connect(&addr),
                )
                .await
                else {
                    return;
                };
                let stop = Instant::now() + Duration::from_secs(10);
                for i in 0u32.. {
                    if Instant::now() > stop {
                        break;
                    }
                    let path = format!("/r{round}-w{w}-{i}");
                    let value = format!("{round}/{w}/{i}").into_bytes();
                    let r = tokio::time::timeout(
                        Duration::from_secs(5),
                        c.create(&path, &value, &opts()),
                    )
                    .await;
                    match r {
                        Ok(Ok(_)) => {
                            acked.lock().unwrap().insert(path.clone(), value);
                        }
                        _ => break,
                    }
                    if i % 3 == 0 {
                        let v2 = format!("{round}/{w}/{i}/set").into_bytes();
                        in_flight.lock().unwrap().insert(path.clone(), v2.clone());
                        match tokio::time::timeout(
                            Duration::from_secs(5),
                            c.set_data(&path, &v2, None),
                        )
                        .await
                        {
                            Ok(Ok(_)) => {
                                acked.lock().unwrap().insert(path, v2);
                            }
                            _ => break,
                        }
                    }
                }
            }));
        }
        let delay = Duration::from_millis(100 + rng.next() % 700);
        tokio::time::sleep(delay).await;
        server.kill();
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
        }
    }
    let total = acked.lock().unwrap().len();
    assert!(
        total > 50,
        "too few writes acknowledged to mean anything ({total})"
    );
    // Final check after the last kill.
    let mut server = spawn(&dir, port, ROUNDS);
    assert!(
        wait_until(Duration::from_secs(20), || ready(port)).await,
        "{}",
        server.log_tail(20)
    );
    let c = zkc::Client::connect(&format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    let maybe = in_flight.lock().unwrap().clone();
    let expected = acked.lock().unwrap().clone();
    for (path, want) in &expected {
        let (got, _) = c
            .get_data(path)
            .await
            .unwrap_or_else(|e| panic!("acknowledged write {path} lost (seed {seed}): {e}"));
        assert!(
            &got == want || maybe.get(path) == Some(&got),
            "{path}: {got:?} vs {want:?}"
        );
    }
    eprintln!("{total} acknowledged writes survived {ROUNDS} SIGKILLs");
    server.terminate(Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_gracefully_and_sessions_reattach_after_restart() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("data");
    let port = free_port();
    let mut server = spawn(&dir, port, 0);
    assert!(
        wait_until(Duration::from_secs(20), || ready(port)).await,
        "{}",
        server.log_tail(20)
    );
    let addr = format!("127.0.0.1:{port}");
    let c = zkc::Client::connector()
        .with_session_timeout(Duration::from_secs(20))
        .with_detached()
        .connect(&addr)
        .await
        .unwrap();
    c.create("/term", b"t", &opts()).await.unwrap();
    c.create(
        "/term-eph",
        b"",
        &CreateMode::Ephemeral.with_acls(Acls::anyone_all()),
    )
    .await
    .unwrap();
    let session = c.into_session();
    // SIGTERM: the server stops by itself, well before the 10 s grace.
    let started = Instant::now();
    server.terminate(Duration::from_secs(10));
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "no graceful stop on SIGTERM"
    );
    let log = std::fs::read_to_string(data.path().join("server-0.log")).unwrap();
    assert!(
        log.contains("shutdown requested") && log.contains("menagerie-server stopped"),
        "{log}"
    );
    let mut server = spawn(&dir, port, 1);
    assert!(
        wait_until(Duration::from_secs(20), || ready(port)).await,
        "{}",
        server.log_tail(20)
    );
    let back = zkc::Client::connector()
        .with_session(session)
        .connect(&addr)
        .await
        .unwrap();
    assert_eq!(back.get_data("/term").await.unwrap().0, b"t");
    assert!(
        back.check_stat("/term-eph").await.unwrap().is_some(),
        "session survived the restart"
    );
    server.terminate(Duration::from_secs(10));
}

#[test]
fn command_line_is_checked() {
    let bin = env!("CARGO_BIN_EXE_menagerie-server");
    let run = |args: &[&str]| std::process::Command::new(bin).args(args).output().unwrap();
    let help = run(&["--help"]);
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--data-dir"));
    for bad in [
        &["--in-memory"][..],
        &["--listen", "127.0.0.1:0"],
        &["--listen", "nowhere", "--in-memory"],
        &[
            "--listen",
            "127.0.0.1:0",
            "--in-memory",
            "--fsync",
            "sometimes",
        ],
        &[
            "--listen",
            "127.0.0.1:0",
            "--in-memory",
            "--data-dir",
            "/tmp/x",
        ],
        &[
            "--listen",
            "127.0.0.1:0",
            "--in-memory",
            "--tick-time",
            "abc",
        ],
        &["--listen", "127.0.0.1:0", "--in-memory", "--bogus"],
    ] {
        let out = run(bad);
        assert_eq!(out.status.code(), Some(1), "{bad:?} should be refused");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("usage:"),
            "{bad:?}"
        );
    }
}
