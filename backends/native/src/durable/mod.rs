//! Durability: an append-only transaction log written with group commit, periodic snapshots, and
//! recovery (newest valid snapshot + replay of the log after it).
//!
//! Files in the data directory:
//! - `log.<first zxid, 16 hex digits>`: records `[crc32 u32][len u32][txn]`, the checksum covering
//!   the length and the txn. A record that is short or fails its checksum ends the log (a torn
//!   tail after a crash); recovery truncates it away and starts a new file.
//! - `snapshot.<zxid, 16 hex>`: the whole tree as of that zxid, followed by a crc32 of it. Written
//!   to a `.tmp` file, fsynced and renamed, so a snapshot is either whole or absent.
//! - `secret`: the key from which session passwords are derived (so they survive restarts).
//! - `lock`: held (flock) while a store has the directory open.
//!
//! The log is written by one thread: it takes every record queued since its last write, writes
//! them with one `write`, fsyncs once (with [`FsyncPolicy::Always`]) and only then publishes the
//! highest zxid as durable. Replies wait for that mark, so an acknowledged write is on disk.

mod txn;

pub(crate) use txn::mode_from_flag;
pub use txn::{decode_txn, encode_txn};

use crate::server::codec::Reader;
use crate::tree::{Change, DataTree, Txn};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use tokio::sync::watch;

/// When the log is flushed to stable storage.
///
/// ```
/// use menagerie_native::durable::FsyncPolicy;
/// assert_eq!("always".parse::<FsyncPolicy>(), Ok(FsyncPolicy::Always));
/// assert!("sometimes".parse::<FsyncPolicy>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// fsync (fdatasync) every group of records before any of them is acknowledged.
    #[default]
    Always,
    /// Only `write` them (they survive a process crash, not a power loss).
    Never,
}

impl std::str::FromStr for FsyncPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "always" => Ok(FsyncPolicy::Always),
            "never" => Ok(FsyncPolicy::Never),
            other => Err(format!("--fsync must be always or never, not {other:?}")),
        }
    }
}

/// Options of a durable store.
///
/// ```
/// use menagerie_native::durable::{DurableOptions, FsyncPolicy};
/// let o = DurableOptions::default();
/// assert_eq!(o.fsync, FsyncPolicy::Always);
/// assert_eq!(o.snapshot_every, 100_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurableOptions {
    /// fsync policy of the transaction log.
    pub fsync: FsyncPolicy,
    /// A snapshot is taken after this many transactions.
    pub snapshot_every: u64,
    /// At most this many records are written per group commit.
    pub max_batch: usize,
}

impl Default for DurableOptions {
    fn default() -> Self {
        DurableOptions {
            fsync: FsyncPolicy::Always,
            snapshot_every: 100_000,
            max_batch: 1000,
        }
    }
}

/// How far the log is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DurableMark {
    /// Every record up to this zxid is durable.
    pub(crate) zxid: i64,
    /// The log failed: nothing more will become durable.
    pub(crate) failed: bool,
}

enum LogCmd {
    Append { zxid: i64, record: Vec<u8> },
    Roll { first_zxid: i64 },
    Stop(mpsc::Sender<()>),
}

struct SnapCmd {
    zxid: i64,
    body: Vec<u8>,
}

fn log_name(zxid: i64) -> String {
    format!("log.{:016x}", zxid as u64)
}

fn snapshot_name(zxid: i64) -> String {
    format!("snapshot.{:016x}", zxid as u64)
}

fn parse_name(name: &str, prefix: &str) -> Option<i64> {
    let hex = name.strip_prefix(prefix)?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok().map(|v| v as i64)
}

/// Files named `<prefix><16 hex>` in `dir`, sorted by their zxid.
fn list(dir: &Path, prefix: &str) -> io::Result<Vec<(i64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(z) = entry
            .file_name()
            .to_str()
            .and_then(|n| parse_name(n, prefix))
        {
            out.push((z, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Frames one log record.
fn frame_record(payload: &[u8], out: &mut Vec<u8>) {
    let len = (payload.len() as u32).to_be_bytes();
    let mut h = crc32fast::Hasher::new();
    h.update(&len);
    h.update(payload);
    out.extend_from_slice(&h.finalize().to_be_bytes());
    out.extend_from_slice(&len);
    out.extend_from_slice(payload);
}

/// Splits a log file's bytes into records; returns them and the length of the valid prefix.
fn parse_records(bytes: &[u8]) -> (Vec<&[u8]>, usize) {
    let mut out = Vec::new();
    let mut pos = 0;
    while bytes.len() - pos >= 8 {
        let crc = u32::from_be_bytes([bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]]);
        let len_bytes = [
            bytes[pos + 4],
            bytes[pos + 5],
            bytes[pos + 6],
            bytes[pos + 7],
        ];
        let len = u32::from_be_bytes(len_bytes) as usize;
        if len > bytes.len() - pos - 8 {
            break;
        }
        let payload = &bytes[pos + 8..pos + 8 + len];
        let mut h = crc32fast::Hasher::new();
        h.update(&len_bytes);
        h.update(payload);
        if h.finalize() != crc {
            break;
        }
        out.push(payload);
        pos += 8 + len;
    }
    (out, pos)
}

/// A random 64-bit value from the standard library's randomly keyed hasher.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

fn lock_dir(dir: &Path) -> io::Result<File> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))?;
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        // SAFETY: flock on a file descriptor we own; no memory is involved.
        let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "{} is in use by another menagerie store (lock held)",
                    dir.display()
                ),
            ));
        }
    }
    Ok(f)
}

fn load_secret(dir: &Path) -> io::Result<u64> {
    let p = dir.join("secret");
    if let Ok(bytes) = fs::read(&p) {
        if bytes.len() == 8 {
            let mut a = [0u8; 8];
            a.copy_from_slice(&bytes);
            return Ok(u64::from_be_bytes(a));
        }
    }
    let secret = random_u64();
    let tmp = dir.join("secret.tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(&secret.to_be_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, &p)?;
    sync_dir(dir)?;
    Ok(secret)
}

/// What recovery found.
pub(crate) struct Recovered {
    pub(crate) tree: DataTree,
    pub(crate) secret: u64,
    pub(crate) log: DurableLog,
    pub(crate) durable: watch::Receiver<DurableMark>,
    pub(crate) replayed: usize,
}

fn corrupt(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Opens (creating if needed) the durable state in `dir`: newest valid snapshot, then the log
/// replayed after it (torn tail truncated), then a fresh log file for new writes.
pub(crate) fn recover(dir: &Path, options: DurableOptions) -> io::Result<Recovered> {
    fs::create_dir_all(dir)?;
    let lock = lock_dir(dir)?;
    let secret = load_secret(dir)?;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().ends_with(".tmp") {
            let _ = fs::remove_file(entry.path());
        }
    }
    let mut tree = None;
    for (zxid, path) in list(dir, "snapshot.")?.into_iter().rev() {
        match read_snapshot(&path) {
            Ok(t) if t.last_zxid() == zxid => {
                tracing::info!(snapshot = %path.display(), zxid = format!("0x{zxid:x}"), "loaded snapshot");
                tree = Some(t);
                break;
            }
            Ok(_) => {
                tracing::warn!(snapshot = %path.display(), "snapshot zxid does not match its name; skipped")
            }
            Err(e) => {
                tracing::warn!(snapshot = %path.display(), error = %e, "invalid snapshot skipped")
            }
        }
    }
    let mut tree = tree.unwrap_or_default();
    let logs = list(dir, "log.")?;
    let mut replayed = 0;
    let mut changes: Vec<Change> = Vec::new();
    for (i, (_, path)) in logs.iter().enumerate() {
        let mut bytes = Vec::new();
        File::open(path)?.read_to_end(&mut bytes)?;
        let (records, valid) = parse_records(&bytes);
        for rec in records {
            let txn: Txn = decode_txn(rec)
                .map_err(|e| corrupt(format!("{}: undecodable record: {e}", path.display())))?;
            if txn.zxid <= tree.last_zxid() {
                continue;
            }
            changes.clear();
            tree.apply(&txn, &mut changes);
            replayed += 1;
        }
        if valid < bytes.len() {
            if i + 1 == logs.len() {
                tracing::warn!(
                    log = %path.display(),
                    valid_bytes = valid,
                    dropped_bytes = bytes.len() - valid,
                    "torn tail at the end of the transaction log truncated"
                );
                let f = OpenOptions::new().write(true).open(path)?;
                f.set_len(valid as u64)?;
                f.sync_all()?;
            } else {
                return Err(corrupt(format!(
                    "{} is corrupt at byte {valid} and is not the newest log file; refusing to \
                     start (move the damaged files away to recover what precedes them)",
                    path.display()
                )));
            }
        }
    }
    // Empty log files (a run that wrote nothing) hold nothing to keep.
    for (_, path) in list(dir, "log.")? {
        if fs::metadata(&path).map(|m| m.len() == 0).unwrap_or(false) {
            fs::remove_file(&path)?;
        }
    }
    let first = tree.last_zxid() + 1;
    let (log, durable) = DurableLog::start(dir, first, tree.last_zxid(), options, lock)?;
    Ok(Recovered {
        tree,
        secret,
        log,
        durable,
        replayed,
    })
}

fn read_snapshot(path: &Path) -> io::Result<DataTree> {
    let bytes = fs::read(path)?;
    if bytes.len() < 4 {
        return Err(corrupt("snapshot too short".into()));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let want = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32fast::hash(body) != want {
        return Err(corrupt("snapshot checksum mismatch".into()));
    }
    DataTree::decode_snapshot(&mut Reader::new(body)).map_err(|e| corrupt(e.to_string()))
}

/// The writing side of the log, owned by the store.
pub(crate) struct DurableLog {
    dir: PathBuf,
    tx: mpsc::Sender<LogCmd>,
    snap_tx: Option<mpsc::Sender<SnapCmd>>,
    log_thread: Option<JoinHandle<()>>,
    snap_thread: Option<JoinHandle<()>>,
    options: DurableOptions,
    since_snapshot: u64,
    _lock: File,
}

impl std::fmt::Debug for DurableLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableLog")
            .field("dir", &self.dir)
            .finish()
    }
}

impl DurableLog {
    fn start(
        dir: &Path,
        first_zxid: i64,
        durable_zxid: i64,
        options: DurableOptions,
        lock: File,
    ) -> io::Result<(DurableLog, watch::Receiver<DurableMark>)> {
        let file = new_log_file(dir, first_zxid)?;
        let (state_tx, state_rx) = watch::channel(DurableMark {
            zxid: durable_zxid,
            failed: false,
        });
        let (tx, rx) = mpsc::channel();
        let d = dir.to_path_buf();
        let log_thread = std::thread::Builder::new()
            .name("menagerie-log".into())
            .spawn(move || log_thread(d, file, rx, state_tx, options))?;
        let (snap_tx, snap_rx) = mpsc::channel();
        let d = dir.to_path_buf();
        let snap_thread = std::thread::Builder::new()
            .name("menagerie-snapshot".into())
            .spawn(move || snapshot_thread(d, snap_rx))?;
        Ok((
            DurableLog {
                dir: dir.to_path_buf(),
                tx,
                snap_tx: Some(snap_tx),
                log_thread: Some(log_thread),
                snap_thread: Some(snap_thread),
                options,
                since_snapshot: 0,
                _lock: lock,
            },
            state_rx,
        ))
    }

    /// Queues a transaction (already applied to `tree`); takes a snapshot when one is due.
    pub(crate) fn append(&mut self, txn: &Txn, tree: &DataTree) {
        let record = encode_txn(txn);
        let _ = self.tx.send(LogCmd::Append {
            zxid: txn.zxid,
            record,
        });
        self.since_snapshot += 1;
        if self.since_snapshot >= self.options.snapshot_every.max(1) {
            self.snapshot(tree);
        }
    }

    /// Serialises `tree` now (consistent: the caller holds the store) and has it written in the
    /// background; the log rolls over to a new file so older files can be purged.
    pub(crate) fn snapshot(&mut self, tree: &DataTree) {
        self.since_snapshot = 0;
        let started = std::time::Instant::now();
        let mut w = crate::server::codec::Writer::new();
        tree.encode_snapshot(&mut w);
        let body = w.into_bytes();
        tracing::debug!(
            zxid = format!("0x{:x}", tree.last_zxid()),
            bytes = body.len(),
            serialise_ms = started.elapsed().as_millis() as u64,
            "snapshot serialised"
        );
        let _ = self.tx.send(LogCmd::Roll {
            first_zxid: tree.last_zxid() + 1,
        });
        if let Some(tx) = &self.snap_tx {
            let _ = tx.send(SnapCmd {
                zxid: tree.last_zxid(),
                body,
            });
        }
    }

    /// Writes out everything queued, stops the threads and waits for them.
    pub(crate) fn stop(&mut self) {
        let (ack_tx, ack_rx) = mpsc::channel();
        if self.tx.send(LogCmd::Stop(ack_tx)).is_ok() {
            let _ = ack_rx.recv();
        }
        self.snap_tx = None;
        if let Some(t) = self.log_thread.take() {
            let _ = t.join();
        }
        if let Some(t) = self.snap_thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for DurableLog {
    fn drop(&mut self) {
        self.stop();
    }
}

fn new_log_file(dir: &Path, first_zxid: i64) -> io::Result<File> {
    let path = dir.join(log_name(first_zxid));
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(&path)?;
    f.seek(SeekFrom::End(0))?;
    sync_dir(dir)?;
    Ok(f)
}

/// How long the log thread keeps collecting a group while records keep arriving (only when the
/// previous group had several records, i.e. writers are concurrent): fewer, larger fsyncs.
const LINGER_IDLE: std::time::Duration = std::time::Duration::from_micros(60);
const LINGER_MAX: std::time::Duration = std::time::Duration::from_micros(400);

fn log_thread(
    dir: PathBuf,
    mut file: File,
    rx: mpsc::Receiver<LogCmd>,
    state: watch::Sender<DurableMark>,
    options: DurableOptions,
) {
    let fail = |what: &str, e: io::Error| {
        tracing::error!(error = %e, "transaction log {what} failed: no further write will be acknowledged");
        state.send_modify(|m| m.failed = true);
    };
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
    let mut pending_zxid: Option<i64> = None;
    let mut last_group = 0usize;
    'outer: loop {
        let Ok(first) = rx.recv() else { break };
        let mut next = Some(first);
        let mut count = 0usize;
        let mut stop: Option<mpsc::Sender<()>> = None;
        let started = std::time::Instant::now();
        let linger = options.fsync == FsyncPolicy::Always && last_group > 1;
        while let Some(cmd) = next.take() {
            match cmd {
                LogCmd::Append { zxid, record } => {
                    frame_record(&record, &mut buf);
                    pending_zxid = Some(zxid);
                    count += 1;
                }
                LogCmd::Roll { first_zxid } => {
                    if let Err(e) = flush(&mut file, &mut buf, options.fsync) {
                        fail("write", e);
                        break 'outer;
                    }
                    match new_log_file(&dir, first_zxid) {
                        Ok(f) => file = f,
                        Err(e) => {
                            fail("roll-over", e);
                            break 'outer;
                        }
                    }
                }
                LogCmd::Stop(ack) => {
                    stop = Some(ack);
                    break;
                }
            }
            if count >= options.max_batch {
                break;
            }
            next = rx.try_recv().ok();
            if next.is_none() && linger && started.elapsed() < LINGER_MAX {
                next = rx.recv_timeout(LINGER_IDLE).ok();
            }
        }
        last_group = count;
        if let Err(e) = flush(&mut file, &mut buf, options.fsync) {
            fail("write", e);
            break;
        }
        if let Some(z) = pending_zxid.take() {
            state.send_modify(|m| m.zxid = m.zxid.max(z));
        }
        if let Some(ack) = stop {
            let _ = ack.send(());
            break;
        }
    }
}

fn flush(file: &mut File, buf: &mut Vec<u8>, fsync: FsyncPolicy) -> io::Result<()> {
    if buf.is_empty() {
        return Ok(());
    }
    file.write_all(buf)?;
    buf.clear();
    if fsync == FsyncPolicy::Always {
        file.sync_data()?;
    }
    Ok(())
}

fn snapshot_thread(dir: PathBuf, rx: mpsc::Receiver<SnapCmd>) {
    while let Ok(cmd) = rx.recv() {
        let started = std::time::Instant::now();
        match write_snapshot(&dir, cmd.zxid, &cmd.body) {
            Ok(()) => {
                tracing::info!(
                    zxid = format!("0x{:x}", cmd.zxid),
                    bytes = cmd.body.len(),
                    ms = started.elapsed().as_millis() as u64,
                    "snapshot written"
                );
                if let Err(e) = purge(&dir) {
                    tracing::warn!(error = %e, "purging old snapshots and logs failed");
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "writing a snapshot failed (the log still has everything)")
            }
        }
    }
}

fn write_snapshot(dir: &Path, zxid: i64, body: &[u8]) -> io::Result<()> {
    let name = snapshot_name(zxid);
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(body)?;
    f.write_all(&crc32fast::hash(body).to_be_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, dir.join(&name))?;
    sync_dir(dir)
}

/// Snapshots kept (the newest ones); logs are kept from the oldest kept snapshot on.
const KEEP_SNAPSHOTS: usize = 2;

fn purge(dir: &Path) -> io::Result<()> {
    let snaps = list(dir, "snapshot.")?;
    if snaps.len() < KEEP_SNAPSHOTS {
        return Ok(());
    }
    let keep_from = snaps[snaps.len() - KEEP_SNAPSHOTS].0;
    for (_, p) in &snaps[..snaps.len() - KEEP_SNAPSHOTS] {
        fs::remove_file(p)?;
    }
    let logs = list(dir, "log.")?;
    for w in logs.windows(2) {
        // Every record of w[0] is below the start of w[1], hence covered by the snapshot.
        if w[1].0 <= keep_from + 1 {
            fs::remove_file(&w[0].1)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_records_end_the_log() {
        let mut buf = Vec::new();
        frame_record(b"one", &mut buf);
        frame_record(b"two", &mut buf);
        let full = buf.len();
        frame_record(b"three", &mut buf);
        buf.truncate(buf.len() - 2);
        let (recs, valid) = parse_records(&buf);
        assert_eq!(recs, vec![&b"one"[..], &b"two"[..]]);
        assert_eq!(valid, full);
        let mut flipped = buf.clone();
        flipped[9] ^= 1;
        assert!(parse_records(&flipped).0.is_empty());
        let zeros = vec![0u8; 64];
        assert!(parse_records(&zeros).0.is_empty());
    }
}
