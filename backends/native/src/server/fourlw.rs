//! Four-letter words: plain-text answers in ZooKeeper's formats, then the connection closes.

use super::Shared;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::UNIX_EPOCH;

/// The words served.
pub(crate) const WORDS: [&str; 10] = [
    "ruok", "srvr", "stat", "mntr", "conf", "envi", "cons", "wchs", "dump", "isro",
];

/// The version string reported (ZooKeeper's format: clients and tools parse the leading version).
pub(crate) fn version() -> String {
    format!(
        "3.8.0-menagerie-{}, built on 1970-01-01 00:00 UTC",
        env!("CARGO_PKG_VERSION")
    )
}

/// The word at the start of a connection, if it is one we serve.
pub(crate) fn parse(head: &[u8; 4]) -> Option<&'static str> {
    WORDS.iter().copied().find(|w| w.as_bytes() == head)
}

fn hex(v: i64) -> String {
    format!("0x{:x}", v)
}

fn stats_lines(s: &Shared, out: &mut String, with_clients: bool) {
    let (nodes, zxid) = s.store.with_tree(|t| (t.node_count(), t.last_zxid()));
    let conns = s.connections();
    let _ = writeln!(out, "Zookeeper version: {}", version());
    if with_clients {
        let _ = writeln!(out, "Clients:");
        for c in &conns {
            let _ = writeln!(
                out,
                " /{}[1](queued={},recved={},sent={})",
                c.peer,
                c.queued(),
                c.received.load(Ordering::Relaxed),
                c.sent.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(out);
    }
    let (min, avg, max) = s.stats.latency.snapshot();
    let _ = writeln!(out, "Latency min/avg/max: {min:.0}/{avg:.4}/{max:.0}");
    let _ = writeln!(
        out,
        "Received: {}",
        s.stats.received.load(Ordering::Relaxed)
    );
    let _ = writeln!(out, "Sent: {}", s.stats.sent.load(Ordering::Relaxed));
    let _ = writeln!(out, "Connections: {}", conns.len());
    let _ = writeln!(out, "Outstanding: 0");
    let _ = writeln!(out, "Zxid: {}", hex(zxid));
    let _ = writeln!(out, "Mode: standalone");
    let _ = writeln!(out, "Node count: {nodes}");
}

/// The text answering `word`.
pub(crate) fn answer(s: &Shared, word: &str) -> String {
    let mut out = String::new();
    match word {
        "ruok" => out.push_str("imok"),
        "isro" => out.push_str("rw"),
        "srvr" => stats_lines(s, &mut out, false),
        "stat" => stats_lines(s, &mut out, true),
        "mntr" => {
            let (nodes, ephemerals, data_size, zxid) = s.store.with_tree(|t| {
                (
                    t.node_count(),
                    t.ephemeral_count(),
                    t.approximate_data_size(),
                    t.last_zxid(),
                )
            });
            let (watches, sessions) = {
                let inner = s.store.lock();
                (
                    inner.wire.count() + inner.watches.counts().0,
                    inner.tree.sessions().len(),
                )
            };
            let (min, avg, max) = s.stats.latency.snapshot();
            let uptime = s.started.elapsed().map(|d| d.as_millis()).unwrap_or(0);
            let lines: Vec<(&str, String)> = vec![
                ("zk_version", version()),
                ("zk_server_state", "standalone".into()),
                ("zk_avg_latency", format!("{avg:.4}")),
                ("zk_max_latency", format!("{max:.0}")),
                ("zk_min_latency", format!("{min:.0}")),
                (
                    "zk_packets_received",
                    s.stats.received.load(Ordering::Relaxed).to_string(),
                ),
                (
                    "zk_packets_sent",
                    s.stats.sent.load(Ordering::Relaxed).to_string(),
                ),
                (
                    "zk_num_alive_connections",
                    s.connections().len().to_string(),
                ),
                ("zk_outstanding_requests", "0".into()),
                ("zk_znode_count", nodes.to_string()),
                ("zk_watch_count", watches.to_string()),
                ("zk_ephemerals_count", ephemerals.to_string()),
                ("zk_approximate_data_size", data_size.to_string()),
                ("zk_global_sessions", sessions.to_string()),
                ("zk_last_zxid", hex(zxid)),
                ("zk_uptime", uptime.to_string()),
                ("zk_open_file_descriptor_count", open_fds().to_string()),
            ];
            for (k, v) in lines {
                let _ = writeln!(out, "{k}\t{v}");
            }
        }
        "conf" => {
            let c = &s.config;
            let _ = writeln!(out, "clientPort={}", s.local_addr.port());
            let _ = writeln!(out, "clientPortAddress={}", s.local_addr.ip());
            let _ = writeln!(out, "secureClientPort=-1");
            match s.store.data_dir() {
                Some(d) => {
                    let _ = writeln!(out, "dataDir={}", d.display());
                    let _ = writeln!(out, "dataLogDir={}", d.display());
                }
                None => {
                    let _ = writeln!(out, "dataDir=(in memory)");
                }
            }
            let _ = writeln!(out, "tickTime={}", c.tick_time_ms);
            let _ = writeln!(out, "maxClientCnxns=0");
            let _ = writeln!(out, "minSessionTimeout={}", c.min_session_timeout_ms());
            let _ = writeln!(out, "maxSessionTimeout={}", c.max_session_timeout_ms());
            let _ = writeln!(out, "serverId=0");
            let _ = writeln!(out, "fsync={:?}", c.fsync);
            let _ = writeln!(out, "snapCount={}", c.snapshot_every);
            let _ = writeln!(out, "jute.maxbuffer={}", c.max_frame);
        }
        "envi" => {
            let _ = writeln!(out, "Environment:");
            let _ = writeln!(out, "zookeeper.version={}", version());
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "localhost".into());
            let _ = writeln!(out, "host.name={host}");
            let _ = writeln!(out, "server.implementation=menagerie-server (Rust)");
            let _ = writeln!(out, "os.name={}", std::env::consts::OS);
            let _ = writeln!(out, "os.arch={}", std::env::consts::ARCH);
            let _ = writeln!(
                out,
                "user.dir={}",
                std::env::current_dir()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default()
            );
            let _ = writeln!(out, "process.id={}", std::process::id());
        }
        "cons" => {
            for c in s.connections() {
                let (min, avg, max) = c.latency.snapshot();
                let est = c
                    .established
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis())
                    .unwrap_or(0);
                let op = *c.last_op.lock().unwrap_or_else(|e| e.into_inner());
                let _ = writeln!(
                    out,
                    " /{}[1](queued={},recved={},sent={},sid={},lop={},est={},to={},lcxid={},lzxid={},lresp=0,llat=0,minlat={:.0},avglat={:.4},maxlat={:.0})",
                    c.peer,
                    c.queued(),
                    c.received.load(Ordering::Relaxed),
                    c.sent.load(Ordering::Relaxed),
                    hex(c.session.load(Ordering::Relaxed)),
                    op,
                    est,
                    c.timeout.load(Ordering::Relaxed),
                    hex(c.last_cxid.load(Ordering::Relaxed) as i64),
                    hex(c.last_zxid.load(Ordering::Relaxed)),
                    min,
                    avg,
                    max
                );
            }
            out.push('\n');
        }
        "wchs" => {
            let inner = s.store.lock();
            let _ = writeln!(
                out,
                "{} connections watching {} paths",
                inner.wire.watching_conns(),
                inner.wire.path_count()
            );
            let _ = writeln!(out, "Total watches:{}", inner.wire.count());
        }
        "dump" => {
            let inner = s.store.lock();
            let _ = writeln!(out, "SessionTracker dump:");
            let mut live: Vec<_> = inner.live.iter().collect();
            live.sort_by_key(|(id, _)| **id);
            let _ = writeln!(out, "Session Sets ({})/({}):", live.len(), live.len());
            for (id, l) in live {
                let left = l.timeout.saturating_sub(l.last_heard.elapsed());
                let _ = writeln!(
                    out,
                    "{} expire in {} ms:\n\t{}",
                    1,
                    left.as_millis(),
                    hex(*id)
                );
            }
            let _ = writeln!(out, "ephemeral nodes dump:");
            let mut with: Vec<_> = inner
                .tree
                .sessions()
                .iter()
                .filter(|(_, s)| !s.ephemerals.is_empty())
                .collect();
            with.sort_by_key(|(id, _)| **id);
            let _ = writeln!(out, "Sessions with Ephemerals ({}):", with.len());
            for (id, info) in with {
                let _ = writeln!(out, "{}:", hex(*id));
                for p in &info.ephemerals {
                    let _ = writeln!(out, "\t{p}");
                }
            }
            let _ = writeln!(out, "Connections with Ephemerals ({}):", 0);
        }
        _ => {}
    }
    out
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}
