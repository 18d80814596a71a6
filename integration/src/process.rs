//! Real servers as child processes: free loopback ports, temp dirs, readiness waits, and a guard
//! that stops the server when the test ends — on panic too, and even when the test process itself
//! is killed (a tiny `sh` watchdog kills the server when our end of its stdin closes).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (the OS picks it; tests never use fixed ports).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral loopback port")
}

/// Polls `probe` every 50 ms until it returns true or `timeout` passes; returns whether it did.
pub async fn wait_until<F, Fut>(timeout: Duration, mut probe: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if probe().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A server process that dies with its guard.
#[derive(Debug)]
pub struct ServerProcess {
    name: String,
    pid: u32,
    watchdog: Child,
    stdin: Option<ChildStdin>,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts `program args…` with its output in `log`, under a watchdog that SIGKILLs it when
    /// this process goes away.
    pub fn spawn(
        name: &str,
        program: &str,
        args: &[String],
        envs: &[(&str, String)],
        log: &Path,
    ) -> std::io::Result<ServerProcess> {
        let script = r#""$@" >"$MENAGERIE_LOG" 2>&1 </dev/null & p=$!; echo $p; read _ignored; kill -9 $p 2>/dev/null; wait $p 2>/dev/null"#;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(script)
            .arg("sh")
            .arg(program)
            .args(args)
            .env("MENAGERIE_LOG", log)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut watchdog = cmd.spawn()?;
        let stdout = watchdog.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let pid: u32 = line.trim().parse().map_err(|_| {
            std::io::Error::other(format!("{name}: watchdog did not report a pid ({line:?})"))
        })?;
        let stdin = watchdog.stdin.take();
        tracing::info!(%name, pid, "started");
        Ok(ServerProcess {
            name: name.to_string(),
            pid,
            watchdog,
            stdin,
            log: log.to_path_buf(),
        })
    }

    /// The server's pid.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The server's log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the server's log (for failure messages).
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .arg(sig)
            .arg(self.pid.to_string())
            .stderr(Stdio::null())
            .status();
    }

    /// SIGKILL: the server dies at once, without any shutdown.
    pub fn kill(&mut self) {
        self.signal("-KILL");
        self.reap();
    }

    /// SIGSTOP: the server freezes (its connections stay open, nothing is answered).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT: a paused server goes on.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// SIGTERM, then SIGKILL if it has not gone after `grace`.
    pub fn terminate(&mut self, grace: Duration) {
        self.signal("-TERM");
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && self.is_alive() {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }

    /// True while the server process exists.
    pub fn is_alive(&self) -> bool {
        Path::new(&format!("/proc/{}", self.pid)).exists()
            && !std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
                .map(|s| s.contains(") Z "))
                .unwrap_or(true)
    }

    fn reap(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"\n");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.watchdog.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.resume();
        self.signal("-KILL");
        self.reap();
        tracing::info!(name = %self.name, pid = self.pid, "stopped");
    }
}
