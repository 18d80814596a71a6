//! Real Apache ZooKeeper 3.8 for tests: a standalone server or an ensemble started from Debian's
//! `zookeeper` package (java + the jars in `/usr/share/java`), on free loopback ports, with temp
//! dirs, readiness through the `ruok` / `srvr` four-letter words, and member control (kill,
//! restart, pause, find the leader). Servers die with their [`ZkCluster`] — on panic too, and when
//! the test process itself is killed (see [`ServerProcess`]).
//!
//! Test settings make things fast: tickTime 200 ms (sessions of 0.4 s – 60 s), containers checked
//! every 100 ms, TTL nodes enabled, no fsync (a killed *process* loses nothing), admin server off.
//!
//! ```no_run
//! use menagerie_integration::zookeeper::ZkCluster;
//! let mut zk = ZkCluster::ensemble(3).expect("start a 3-node ensemble");
//! let hosts = zk.connect_string(); // "127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3"
//! let leader = zk.leader().expect("a leader");
//! zk.kill(leader);
//! zk.wait_serving(std::time::Duration::from_secs(30)).expect("a new leader");
//! zk.restart(leader).expect("the old leader rejoins");
//! # let _ = hosts;
//! ```
//!
//! Needs `java` (17) and Debian's `zookeeper` package; [`available`] says whether they are there.

use crate::process::{free_port, ServerProcess};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The ZooKeeper server jar of Debian's package (its manifest names the other jars it needs).
pub const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";
/// The slf4j binding that writes the server's log to stderr (so into the member's log file).
pub const SLF4J_SIMPLE_JAR: &str = "/usr/share/java/slf4j-simple.jar";
/// The server's main class (standalone when the config names no other servers).
pub const MAIN_CLASS: &str = "org.apache.zookeeper.server.quorum.QuorumPeerMain";

/// How long a server (or an ensemble) may take to start serving.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// True when java and ZooKeeper's jars are installed.
pub fn available() -> bool {
    Path::new(ZOOKEEPER_JAR).exists()
        && std::process::Command::new("java")
            .arg("-version")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
}

/// Server settings for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZkSettings {
    /// ZooKeeper's tickTime in ms (sessions are clamped to `[min_session_ms, max_session_ms]`).
    pub tick_ms: u32,
    /// minSessionTimeout in ms.
    pub min_session_ms: u32,
    /// maxSessionTimeout in ms.
    pub max_session_ms: u32,
    /// `-Dzookeeper.extendedTypesEnabled` (TTL nodes).
    pub extended_types: bool,
    /// `-Dznode.container.checkIntervalMs`: how often containers and TTL nodes are reaped.
    pub container_check_ms: u32,
    /// JVM heap, in MiB.
    pub heap_mb: u32,
    /// ZooKeeper's own durability defaults (`forceSync=yes`, 64 MiB log preallocation) instead of
    /// the tests' faster `forceSync=no`: for benchmarks that compare durable servers.
    pub force_sync: bool,
}

impl Default for ZkSettings {
    fn default() -> Self {
        ZkSettings {
            tick_ms: 200,
            min_session_ms: 400,
            max_session_ms: 60_000,
            extended_types: true,
            container_check_ms: 100,
            heap_mb: 256,
            force_sync: false,
        }
    }
}

/// True when the server at `addr` answers `ruok` with `imok` (ZooKeeper or menagerie-server).
pub async fn ruok(addr: &str) -> bool {
    let addr = addr.to_string();
    tokio::task::spawn_blocking(move || four_letter(&addr, "ruok", Duration::from_secs(2)))
        .await
        .ok()
        .and_then(Result::ok)
        .is_some_and(|answer| answer == "imok")
}

/// A conformance-kit factory on `cluster` with 4 s sessions (tracing per
/// [`init_test_logs`](crate::init_test_logs)).
pub fn kit_factory(cluster: &ZkCluster) -> menagerie_zookeeper::ZkFactory {
    crate::init_test_logs();
    menagerie_zookeeper::ZkFactory::new(
        cluster.connect_string(),
        menagerie_zookeeper::ZkOptions::default().with_session_timeout(Duration::from_secs(4)),
    )
}

/// Sends a four-letter word to `addr` (`127.0.0.1:port`) and returns the answer (the server closes
/// the connection after it).
pub fn four_letter(addr: &str, word: &str, timeout: Duration) -> std::io::Result<String> {
    let sock: SocketAddr = addr.parse().map_err(|e| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{addr}: {e}"))
    })?;
    let mut stream = TcpStream::connect_timeout(&sock, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(word.as_bytes())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

/// The `Mode:` of a `srvr` answer (`standalone`, `leader`, `follower`, `observer`); `None` when the
/// server is not serving.
pub fn srvr_mode(srvr: &str) -> Option<String> {
    srvr.lines()
        .find_map(|l| l.strip_prefix("Mode:"))
        .map(|m| m.trim().to_string())
}

/// One member of a [`ZkCluster`].
#[derive(Debug)]
pub struct ZkMember {
    /// Server id (`myid`; 0 for a standalone server).
    pub id: u32,
    /// Client port on 127.0.0.1.
    pub client_port: u16,
    /// Quorum (follower ↔ leader) port; 0 standalone.
    pub quorum_port: u16,
    /// Leader-election port; 0 standalone.
    pub election_port: u16,
    dir: PathBuf,
    process: Option<ServerProcess>,
    starts: u32,
}

impl ZkMember {
    /// `127.0.0.1:<client port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// The member's config and data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// True while its process runs (paused counts as running).
    pub fn is_running(&self) -> bool {
        self.process.as_ref().is_some_and(|p| p.is_alive())
    }

    /// The answer to `srvr`, if the member answers.
    pub fn srvr(&self) -> Option<String> {
        four_letter(&self.addr(), "srvr", Duration::from_secs(2)).ok()
    }

    /// The member's mode (`standalone`, `leader`, `follower`) when it is serving.
    pub fn mode(&self) -> Option<String> {
        self.srvr().as_deref().and_then(srvr_mode)
    }

    /// The last `lines` lines of the member's current log.
    pub fn log_tail(&self, lines: usize) -> String {
        match &self.process {
            Some(p) => p.log_tail(lines),
            None => String::from("(not running)"),
        }
    }
}

/// A standalone ZooKeeper server or an ensemble, stopped on drop.
#[derive(Debug)]
pub struct ZkCluster {
    settings: ZkSettings,
    members: Vec<ZkMember>,
    // Last, so the processes are gone before their directories.
    dir: tempfile::TempDir,
}

/// Removes temp dirs left by earlier test processes that died (a static cluster's dir is never
/// dropped). Names carry the owner's pid: `menagerie-zk-<pid>-…`.
fn sweep_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("menagerie-zk-")) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl ZkCluster {
    /// Starts a standalone server with [`ZkSettings::default`] and waits until it serves.
    pub fn standalone() -> std::io::Result<ZkCluster> {
        ZkCluster::start(1, ZkSettings::default())
    }

    /// Starts an ensemble of `n` members (odd, ≥ 3) with [`ZkSettings::default`] and waits until it
    /// has a leader and every member serves.
    pub fn ensemble(n: usize) -> std::io::Result<ZkCluster> {
        ZkCluster::start(n, ZkSettings::default())
    }

    /// Starts `n` members (1 = standalone) with `settings` and waits until all of them serve.
    pub fn start(n: usize, settings: ZkSettings) -> std::io::Result<ZkCluster> {
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a cluster needs at least one member",
            ));
        }
        if !available() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "ZooKeeper tests need java and {ZOOKEEPER_JAR}: apt-get install zookeeper \
                     (Debian's package, with its default-jre dependency)"
                ),
            ));
        }
        sweep_stale_dirs();
        let dir = tempfile::Builder::new()
            .prefix(&format!("menagerie-zk-{}-", std::process::id()))
            .tempdir()?;
        let standalone = n == 1;
        let mut members = Vec::with_capacity(n);
        for i in 0..n {
            let id = if standalone { 0 } else { i as u32 + 1 };
            let mdir = dir.path().join(format!("member-{id}"));
            std::fs::create_dir_all(mdir.join("data"))?;
            members.push(ZkMember {
                id,
                client_port: free_port(),
                quorum_port: if standalone { 0 } else { free_port() },
                election_port: if standalone { 0 } else { free_port() },
                dir: mdir,
                process: None,
                starts: 0,
            });
        }
        let mut cluster = ZkCluster {
            settings,
            members,
            dir,
        };
        for i in 0..n {
            cluster.write_config(i)?;
            cluster.spawn(i)?;
        }
        if let Err(e) = cluster.wait_serving(START_TIMEOUT) {
            return Err(std::io::Error::other(format!(
                "{e}\n{}",
                cluster.describe_logs(40)
            )));
        }
        tracing::info!(hosts = %cluster.connect_string(), "zookeeper ready");
        Ok(cluster)
    }

    fn write_config(&self, i: usize) -> std::io::Result<()> {
        let m = &self.members[i];
        let s = &self.settings;
        let mut cfg = format!(
            "tickTime={tick}\n\
             initLimit=25\n\
             syncLimit=10\n\
             dataDir={data}\n\
             clientPort={port}\n\
             clientPortAddress=127.0.0.1\n\
             minSessionTimeout={min}\n\
             maxSessionTimeout={max}\n\
             maxClientCnxns=0\n\
             4lw.commands.whitelist=*\n\
             admin.enableServer=false\n\
             autopurge.purgeInterval=0\n",
            tick = s.tick_ms,
            data = m.dir.join("data").display(),
            port = m.client_port,
            min = s.min_session_ms,
            max = s.max_session_ms,
        );
        if !s.force_sync {
            cfg.push_str("forceSync=no\npreAllocSize=1024\n");
        }
        if self.members.len() > 1 {
            for peer in &self.members {
                cfg.push_str(&format!(
                    "server.{}=127.0.0.1:{}:{}\n",
                    peer.id, peer.quorum_port, peer.election_port
                ));
            }
            std::fs::write(m.dir.join("data").join("myid"), format!("{}\n", m.id))?;
        }
        std::fs::write(m.dir.join("zoo.cfg"), cfg)
    }

    fn spawn(&mut self, i: usize) -> std::io::Result<()> {
        let s = self.settings.clone();
        let m = &mut self.members[i];
        m.starts += 1;
        let log = m.dir.join(format!("server-{}.log", m.starts));
        let args: Vec<String> = vec![
            format!("-Xmx{}m", s.heap_mb),
            "-XX:+UseSerialGC".into(),
            "-XX:TieredStopAtLevel=1".into(),
            "-Djava.net.preferIPv4Stack=true".into(),
            format!("-Dzookeeper.extendedTypesEnabled={}", s.extended_types),
            format!("-Dznode.container.checkIntervalMs={}", s.container_check_ms),
            "-Dzookeeper.admin.enableServer=false".into(),
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=info".into(),
            "-Dorg.slf4j.simpleLogger.showDateTime=true".into(),
            "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS".into(),
            "-cp".into(),
            format!("{ZOOKEEPER_JAR}:{SLF4J_SIMPLE_JAR}"),
            MAIN_CLASS.into(),
            m.dir.join("zoo.cfg").display().to_string(),
        ];
        let name = format!("zookeeper-{}", m.id);
        m.process = Some(ServerProcess::spawn(&name, "java", &args, &[], &log)?);
        Ok(())
    }

    /// The connection string: every member's `127.0.0.1:port`, comma separated.
    pub fn connect_string(&self) -> String {
        self.members
            .iter()
            .map(ZkMember::addr)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A `zk://` URL for every member with `chroot` (`""` for none) and a session timeout.
    pub fn url(&self, chroot: &str, session_timeout: Duration) -> String {
        format!(
            "zk://{}{chroot}?session_timeout_ms={}",
            self.connect_string(),
            session_timeout.as_millis()
        )
    }

    /// The members.
    pub fn members(&self) -> &[ZkMember] {
        &self.members
    }

    /// Member `i`.
    pub fn member(&self, i: usize) -> &ZkMember {
        &self.members[i]
    }

    /// The settings the servers run with.
    pub fn settings(&self) -> &ZkSettings {
        &self.settings
    }

    /// The cluster's temp directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Index of the member that reports `Mode: leader` (or the standalone server).
    pub fn leader(&self) -> Option<usize> {
        self.members.iter().position(|m| {
            m.is_running() && matches!(m.mode().as_deref(), Some("leader") | Some("standalone"))
        })
    }

    /// Indexes of the running members that follow.
    pub fn followers(&self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|&i| {
                self.members[i].is_running()
                    && self.members[i].mode().as_deref() == Some("follower")
            })
            .collect()
    }

    /// SIGKILLs member `i` (no shutdown at all).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.members[i].process.take() {
            p.kill();
            tracing::info!(member = self.members[i].id, "zookeeper member killed");
        }
    }

    /// Starts member `i` again on the same ports and data (killing it first if it runs) and waits
    /// until it serves.
    pub fn restart(&mut self, i: usize) -> std::io::Result<()> {
        self.kill(i);
        self.spawn(i)?;
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if self.members[i].mode().is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(std::io::Error::other(format!(
            "member {} did not serve again within {START_TIMEOUT:?}\n{}",
            self.members[i].id,
            self.members[i].log_tail(40)
        )))
    }

    /// SIGSTOPs member `i`: its connections stay open and nothing is answered.
    pub fn pause(&self, i: usize) {
        if let Some(p) = &self.members[i].process {
            p.pause();
        }
    }

    /// SIGCONTs member `i`.
    pub fn resume(&self, i: usize) {
        if let Some(p) = &self.members[i].process {
            p.resume();
        }
    }

    /// Index of the member holding the client connection of session `session_id` (from `cons`).
    pub fn session_member(&self, session_id: i64) -> Option<usize> {
        let needle = format!("sid=0x{session_id:x},");
        self.members.iter().position(|m| {
            m.is_running()
                && four_letter(&m.addr(), "cons", Duration::from_secs(2))
                    .map(|text| text.contains(&needle))
                    .unwrap_or(false)
        })
    }

    /// Undoes what a test did to the members: resumes paused ones, restarts dead ones, and waits
    /// until the cluster serves.
    pub fn heal(&mut self) -> std::io::Result<()> {
        for i in 0..self.members.len() {
            self.resume(i);
            if !self.members[i].is_running() {
                self.kill(i);
                self.spawn(i)?;
            }
        }
        self.wait_serving(START_TIMEOUT)
    }

    /// Waits until every running member serves and (for an ensemble) exactly one leads.
    pub fn wait_serving(&self, timeout: Duration) -> std::io::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let modes: Vec<Option<String>> = self
                .members
                .iter()
                .filter(|m| m.is_running())
                .map(ZkMember::mode)
                .collect();
            let serving = modes.iter().all(Option::is_some);
            let leaders = modes
                .iter()
                .filter(|m| matches!(m.as_deref(), Some("leader") | Some("standalone")))
                .count();
            if !modes.is_empty() && serving && leaders == 1 {
                return Ok(());
            }
            let last = format!("{modes:?}");
            if self
                .members
                .iter()
                .any(|m| m.process.is_some() && !m.is_running())
            {
                return Err(std::io::Error::other(format!(
                    "a zookeeper member exited (modes {last})"
                )));
            }
            if Instant::now() >= deadline {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("zookeeper not serving after {timeout:?} (modes {last})"),
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last `lines` log lines of every member (for failure messages).
    pub fn describe_logs(&self, lines: usize) -> String {
        self.members
            .iter()
            .map(|m| format!("--- zookeeper member {} ---\n{}", m.id, m.log_tail(lines)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// One standalone server shared by every test of a test binary (started on first use; stopped
/// when the test process exits).
pub fn shared_standalone() -> &'static ZkCluster {
    static CLUSTER: OnceLock<ZkCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        ZkCluster::standalone().unwrap_or_else(|e| panic!("start a standalone ZooKeeper: {e}"))
    })
}

/// One 3-node ensemble shared by every test of a test binary (never killed or paused: tests that
/// disturb members start their own).
pub fn shared_ensemble() -> &'static ZkCluster {
    static CLUSTER: OnceLock<ZkCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        ZkCluster::ensemble(3).unwrap_or_else(|e| panic!("start a 3-node ZooKeeper ensemble: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_from_srvr() {
        let text = "Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.0/0\nMode: follower\nNode count: 5\n";
        assert_eq!(srvr_mode(text).as_deref(), Some("follower"));
        assert_eq!(
            srvr_mode("This ZooKeeper instance is not currently serving requests\n"),
            None
        );
    }
}
