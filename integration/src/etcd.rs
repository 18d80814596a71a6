//! Real etcd for the tests: Debian's `etcd-server` (`/usr/bin/etcd`, 3.4) started single-node or
//! as a cluster on free loopback ports with temp data dirs, readiness by a real request, member
//! kill / restart, leader lookup — plus a loopback TCP proxy that can cut a client off.
//!
//! ```no_run
//! # async fn demo() {
//! use menagerie_integration::etcd::EtcdCluster;
//! let mut cluster = EtcdCluster::start(3).await;
//! let leader = cluster.leader().await.expect("a leader");
//! cluster.kill(leader);
//! let _new = cluster.wait_leader(std::time::Duration::from_secs(10)).await.expect("a new leader");
//! cluster.restart(leader).await;
//! # }
//! ```

use crate::process::{free_port, wait_until, ServerProcess};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// Where Debian's `etcd-server` installs etcd (override with `MENAGERIE_ETCD`).
pub const ETCD_BIN: &str = "/usr/bin/etcd";

/// How long a member may take to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

fn etcd_bin() -> String {
    std::env::var("MENAGERIE_ETCD").unwrap_or_else(|_| ETCD_BIN.to_string())
}

/// True when the etcd binary is installed (tests that need it fail with a clear message if not).
pub fn etcd_available() -> bool {
    Path::new(&etcd_bin()).exists()
}

/// The root of this process's etcd data dirs; data dirs of dead test processes are removed.
fn data_root() -> PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let base = std::env::temp_dir().join("menagerie-etcd");
        let _ = std::fs::create_dir_all(&base);
        if let Ok(entries) = std::fs::read_dir(&base) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                let pid = name.split('-').next().and_then(|p| p.parse::<u32>().ok());
                if let Some(pid) = pid {
                    if !Path::new(&format!("/proc/{pid}")).exists() {
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
        }
        let mine = base.join(format!("{}-{}", std::process::id(), crate::etcd::unique()));
        let _ = std::fs::create_dir_all(&mine);
        mine
    })
    .clone()
}

fn unique() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos.wrapping_add(N.fetch_add(1, Ordering::Relaxed))
}

/// One etcd member.
#[derive(Debug)]
pub struct EtcdMember {
    /// Member name (`m0`, `m1`, …).
    pub name: String,
    /// Client port on 127.0.0.1.
    pub client_port: u16,
    /// Peer port on 127.0.0.1.
    pub peer_port: u16,
    data_dir: PathBuf,
    process: Option<ServerProcess>,
}

impl EtcdMember {
    /// `127.0.0.1:<client port>`.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// True while the member's process runs.
    pub fn is_running(&self) -> bool {
        self.process.as_ref().is_some_and(|p| p.is_alive())
    }

    /// The server process (for pause / resume / log), while it runs.
    pub fn process(&self) -> Option<&ServerProcess> {
        self.process.as_ref()
    }

    /// The last lines of the member's log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.process
            .as_ref()
            .map(|p| p.log_tail(lines))
            .unwrap_or_default()
    }
}

/// A single-node or multi-node etcd cluster of child processes; stopped on drop.
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<EtcdMember>,
    initial_cluster: String,
    token: String,
    dir: PathBuf,
}

impl EtcdCluster {
    /// Starts an `n`-member cluster (1 = single node) and waits until every member answers a
    /// linearizable read (so the cluster has a leader). Panics with the logs if it cannot.
    pub async fn start(n: usize) -> EtcdCluster {
        assert!(
            etcd_available(),
            "etcd is not installed at {}: apt-get install etcd-server",
            etcd_bin()
        );
        let token = format!("menagerie-{}", unique());
        let dir = data_root().join(&token);
        std::fs::create_dir_all(&dir).expect("create the cluster's data dir");
        let mut members: Vec<EtcdMember> = (0..n)
            .map(|i| EtcdMember {
                name: format!("m{i}"),
                client_port: free_port(),
                peer_port: free_port(),
                data_dir: dir.join(format!("m{i}.etcd")),
                process: None,
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = EtcdCluster {
            members: Vec::new(),
            initial_cluster,
            token,
            dir,
        };
        for m in members.iter_mut() {
            m.process = Some(cluster.spawn(m));
        }
        cluster.members = members;
        for i in 0..n {
            cluster.wait_ready(i).await;
        }
        cluster
    }

    fn spawn(&self, m: &EtcdMember) -> ServerProcess {
        let client = format!("http://127.0.0.1:{}", m.client_port);
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        let args: Vec<String> = [
            "--name",
            &m.name,
            "--data-dir",
            &m.data_dir.to_string_lossy(),
            "--listen-client-urls",
            &client,
            "--advertise-client-urls",
            &client,
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
            "--initial-cluster",
            &self.initial_cluster,
            "--initial-cluster-token",
            &self.token,
            "--initial-cluster-state",
            "new",
            "--heartbeat-interval",
            "100",
            "--election-timeout",
            "1000",
            "--logger",
            "zap",
            "--log-level",
            "warn",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let log = self.dir.join(format!("{}.log", m.name));
        ServerProcess::spawn(&format!("etcd-{}", m.name), &etcd_bin(), &args, &[], &log)
            .expect("spawn etcd")
    }

    /// Waits until member `i` answers a linearizable read; panics with its log if it does not.
    pub async fn wait_ready(&self, i: usize) {
        let ep = self.members[i].endpoint();
        let ready = wait_until(READY_TIMEOUT, || {
            let ep = ep.clone();
            async move { linearizable_read(&ep).await }
        })
        .await;
        assert!(
            ready,
            "etcd member {} did not become ready within {READY_TIMEOUT:?}; log:\n{}",
            self.members[i].name,
            self.members[i].log_tail(40)
        );
    }

    /// The members.
    pub fn members(&self) -> &[EtcdMember] {
        &self.members
    }

    /// `host:port` of every member (running or not).
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(EtcdMember::endpoint).collect()
    }

    /// An `etcd://` URL naming every member, with `prefix` (e.g. `/app`).
    pub fn url(&self, prefix: &str) -> String {
        format!("etcd://{}{}", self.endpoints().join(","), prefix)
    }

    /// Kills member `i` at once (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.members[i].process.take() {
            p.kill();
        }
    }

    /// Restarts member `i` (after [`kill`](EtcdCluster::kill)) on its ports and data dir, and
    /// waits until it answers.
    pub async fn restart(&mut self, i: usize) {
        self.kill(i);
        let p = self.spawn(&self.members[i]);
        self.members[i].process = Some(p);
        self.wait_ready(i).await;
    }

    /// The index of the current leader, asking the running members (None if none knows one).
    pub async fn leader(&self) -> Option<usize> {
        let mut ids = Vec::new();
        let mut leader = None;
        for m in &self.members {
            if !m.is_running() {
                ids.push(None);
                continue;
            }
            match member_status(&m.endpoint()).await {
                Some((id, lead)) => {
                    ids.push(Some(id));
                    if lead != 0 {
                        leader = Some(lead);
                    }
                }
                None => ids.push(None),
            }
        }
        let lead = leader?;
        ids.iter().position(|id| *id == Some(lead))
    }

    /// Waits (bounded) until a running member is the leader; returns its index.
    pub async fn wait_leader(&self, timeout: Duration) -> Option<usize> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(l) = self.leader().await {
                if self.members[l].is_running() {
                    return Some(l);
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            drop(m.process.take());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn connect(endpoint: &str) -> Option<etcd_client::Client> {
    let opts = etcd_client::ConnectOptions::new()
        .with_timeout(Duration::from_secs(2))
        .with_connect_timeout(Duration::from_secs(1));
    tokio::time::timeout(
        Duration::from_secs(3),
        etcd_client::Client::connect([format!("http://{endpoint}")], Some(opts)),
    )
    .await
    .ok()?
    .ok()
}

/// True when `endpoint` answers a linearizable read (it is up and its cluster has a leader).
pub async fn linearizable_read(endpoint: &str) -> bool {
    let Some(mut c) = connect(endpoint).await else {
        return false;
    };
    matches!(
        tokio::time::timeout(
            Duration::from_secs(3),
            c.get("menagerie-readiness-probe", None)
        )
        .await,
        Ok(Ok(_))
    )
}

/// (member id, leader id) as `endpoint` reports them.
pub async fn member_status(endpoint: &str) -> Option<(u64, u64)> {
    let mut c = connect(endpoint).await?;
    let s = tokio::time::timeout(Duration::from_secs(3), c.status())
        .await
        .ok()?
        .ok()?;
    let id = s.header()?.member_id();
    Some((id, s.leader()))
}

/// One etcd server shared by every test of a test binary (started on first use; it dies with
/// the test process). Safe to call from any runtime or thread.
pub fn shared_single() -> &'static EtcdCluster {
    static SHARED: OnceLock<EtcdCluster> = OnceLock::new();
    SHARED.get_or_init(|| start_blocking(1))
}

/// A 3-member cluster shared by every test of a test binary (see [`shared_single`]). Tests that
/// kill members must start their own with [`EtcdCluster::start`].
pub fn shared_cluster() -> &'static EtcdCluster {
    static SHARED: OnceLock<EtcdCluster> = OnceLock::new();
    SHARED.get_or_init(|| start_blocking(3))
}

/// Starts a cluster from synchronous code (on a helper thread with its own runtime).
pub fn start_blocking(n: usize) -> EtcdCluster {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime to start etcd")
            .block_on(EtcdCluster::start(n))
    })
    .join()
    .expect("starting etcd panicked")
}

/// Options for sessions on `cluster` under `prefix`, with a short session timeout for tests.
pub fn options(cluster: &EtcdCluster, prefix: &str) -> menagerie_etcd::EtcdOptions {
    let mut o = menagerie_etcd::EtcdOptions::new(cluster.endpoints(), prefix);
    o.session_timeout = Duration::from_secs(4);
    o
}

/// A conformance-kit factory on the shared single-node server, in a fresh namespace.
pub fn kit_factory() -> menagerie_etcd::EtcdFactory {
    menagerie_etcd::EtcdFactory::new(options(shared_single(), &format!("/kit-{}", unique())))
}

/// A conformance-kit factory on the shared 3-member cluster, in a fresh namespace.
pub fn cluster_kit_factory() -> menagerie_etcd::EtcdFactory {
    menagerie_etcd::EtcdFactory::new(options(shared_cluster(), &format!("/kit-{}", unique())))
}

/// The loopback TCP proxy (now in [`crate::proxy`]), re-exported for existing callers.
pub use crate::proxy::Proxy;
