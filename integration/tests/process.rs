//! The process guard: a child dies with its guard, pause/resume work, the watchdog reports pids.

use menagerie_integration::process::{free_port, ServerProcess};

#[test]
fn guard_kills_the_server_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("sleep.log");
    let p = ServerProcess::spawn("sleeper", "sleep", &["300".to_string()], &[], &log).unwrap();
    let pid = p.pid();
    assert!(p.is_alive());
    p.pause();
    p.resume();
    drop(p);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "server {pid} survived its guard"
    );
}

#[test]
fn kill_is_immediate_and_ports_are_loopback_and_free() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = ServerProcess::spawn(
        "sleeper",
        "sleep",
        &["300".to_string()],
        &[],
        &dir.path().join("log"),
    )
    .unwrap();
    p.kill();
    assert!(!p.is_alive());
    let port = free_port();
    assert!(port > 0);
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port is free");
}
