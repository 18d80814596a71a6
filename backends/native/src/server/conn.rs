//! One client connection: handshake, then requests answered in order.
//!
//! A reader task decodes frames and answers each request under the store lock, pushing the reply
//! (and any watch notifications a write causes, to whichever connections they concern) into
//! per-connection outgoing queues. A writer task drains its queue to the socket. Every queued frame
//! carries a *tag*: the zxid the store had reached when the frame was made; it is written only
//! once the log is durable up to its tag. So no client ever sees state (a reply, a notification,
//! a read) that a crash could take back, and replies keep their order.

use super::codec::{write_acls, Acl, Writer};
use super::proto::{self, err, op, ConnectRequest, MultiOp, ReadOp, Request, SetWatches};
use super::watches::{notification, ConnId, WireKind};
use super::{fourlw, Shared};
use crate::durable::mode_from_flag;
use crate::store::Inner;
use crate::tree::{TxnBody, TxnResult};
use menagerie_core::{Error, ErrorKind, EventType, MultiOpError, Op, OpResult, SessionId};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Notify};

/// Outgoing bytes a connection may have queued before its reader stops taking requests.
const MAX_PENDING: usize = 8 << 20;

/// Queued bytes past which a connection that does not read is dropped (notifications pile up
/// even when it sends nothing).
const MAX_QUEUED: usize = 256 << 20;

/// How long a fresh connection may take to send its connect request.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

enum Out {
    Frame {
        tag: i64,
        bytes: Vec<u8>,
        started: Option<Instant>,
    },
    Close(&'static str),
}

/// The sending side of a connection, shared with the store (notifications) and the server
/// (four-letter words, shutdown).
pub struct ConnSink {
    pub(crate) id: ConnId,
    pub(crate) peer: SocketAddr,
    tx: mpsc::UnboundedSender<Out>,
    pending: AtomicUsize,
    drained: Notify,
    closed: watch::Sender<bool>,
    close_sent: AtomicBool,
    // Statistics (cons / stat).
    pub(crate) received: AtomicU64,
    pub(crate) sent: AtomicU64,
    pub(crate) session: AtomicI64,
    pub(crate) timeout: AtomicI32,
    pub(crate) established: SystemTime,
    pub(crate) last_cxid: AtomicI32,
    pub(crate) last_zxid: AtomicI64,
    pub(crate) last_op: Mutex<&'static str>,
    pub(crate) latency: super::Latency,
}

impl std::fmt::Debug for ConnSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnSink")
            .field("id", &self.id)
            .field("peer", &self.peer)
            .finish()
    }
}

impl ConnSink {
    /// Queues a frame, to be written once the log is durable up to `tag`.
    pub(crate) fn push(&self, tag: i64, bytes: Vec<u8>, started: Option<Instant>) {
        let n = bytes.len();
        let queued = self.pending.fetch_add(n, Ordering::AcqRel) + n;
        if queued > MAX_QUEUED {
            self.close("client does not read its replies and notifications");
            return;
        }
        if self
            .tx
            .send(Out::Frame {
                tag,
                bytes,
                started,
            })
            .is_err()
        {
            self.pending.fetch_sub(n, Ordering::AcqRel);
        }
    }

    /// Closes the connection after what is queued (once).
    pub(crate) fn close(&self, reason: &'static str) {
        if !self.close_sent.swap(true, Ordering::AcqRel) {
            let _ = self.tx.send(Out::Close(reason));
        }
    }

    /// Outgoing frames queued.
    pub(crate) fn queued(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }
}

/// What a request handler tells the reader loop.
enum Flow {
    Continue,
    Close(&'static str),
}

/// Reads a 4-byte length and the frame; `Ok(None)` at a clean end of stream.
async fn read_frame(
    rd: &mut BufReader<OwnedReadHalf>,
    max: usize,
    buf: &mut Vec<u8>,
) -> Result<Option<()>, String> {
    let mut len = [0u8; 4];
    match rd.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(format!("read failed: {e}")),
    }
    let n = i32::from_be_bytes(len);
    if n < 0 || n as usize > max {
        return Err(format!("frame length {n} outside 0..={max}"));
    }
    buf.clear();
    buf.resize(n as usize, 0);
    rd.read_exact(buf)
        .await
        .map_err(|e| format!("read of a {n}-byte frame failed: {e}"))?;
    Ok(Some(()))
}

fn reply_frame(xid: i32, zxid: i64, code: i32) -> Writer {
    let mut w = Writer::frame();
    w.int(xid).long(zxid).int(code);
    w
}

/// Serves one accepted connection to its end.
pub(crate) async fn serve(stream: TcpStream, shared: Arc<Shared>, id: ConnId) {
    let peer = match stream.peer_addr() {
        Ok(p) => p,
        Err(_) => return,
    };
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    let mut head = [0u8; 4];
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, rd.read_exact(&mut head)).await {
        Ok(Ok(_)) => {}
        Ok(Err(_)) => return,
        Err(_) => {
            tracing::debug!(%peer, "no connect request in time; closing");
            return;
        }
    }
    if let Some(word) = fourlw::parse(&head) {
        shared.stats.received.fetch_add(1, Ordering::Relaxed);
        let text = fourlw::answer(&shared, word);
        let mut wr = wr;
        let _ = wr.write_all(text.as_bytes()).await;
        let _ = wr.shutdown().await;
        return;
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let (closed_tx, _) = watch::channel(false);
    let sink = Arc::new(ConnSink {
        id,
        peer,
        tx,
        pending: AtomicUsize::new(0),
        drained: Notify::new(),
        closed: closed_tx,
        close_sent: AtomicBool::new(false),
        received: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        session: AtomicI64::new(0),
        timeout: AtomicI32::new(0),
        established: SystemTime::now(),
        last_cxid: AtomicI32::new(0),
        last_zxid: AtomicI64::new(0),
        last_op: Mutex::new("NA"),
        latency: super::Latency::default(),
    });
    shared.register(sink.clone());
    let writer = tokio::spawn(write_loop(
        wr,
        rx,
        shared.store.durable_receiver(),
        sink.clone(),
        shared.clone(),
    ));
    let mut conn = Conn {
        shared: shared.clone(),
        sink: sink.clone(),
        session: 0,
        auths: Vec::new(),
    };
    let reason = conn.run(&mut rd, head).await;
    match &reason {
        Ok(why) => tracing::debug!(%peer, conn = id, "connection closed: {why}"),
        Err(why) => tracing::warn!(%peer, conn = id, "closing connection: {why}"),
    }
    sink.close("connection ended");
    conn.cleanup();
    let _ = writer.await;
    shared.unregister(id);
}

struct Conn {
    shared: Arc<Shared>,
    sink: Arc<ConnSink>,
    session: SessionId,
    auths: Vec<(String, String)>,
}

impl Conn {
    /// The connection's life after the first 4 bytes. `Ok(why)` for an orderly end,
    /// `Err(why)` for a protocol violation (logged as a warning).
    async fn run(
        &mut self,
        rd: &mut BufReader<OwnedReadHalf>,
        head: [u8; 4],
    ) -> Result<&'static str, String> {
        let max = self.shared.config.max_frame;
        let n = i32::from_be_bytes(head);
        if n < 0 || n as usize > max {
            return Err(format!("first frame length {n} outside 0..={max}"));
        }
        let mut buf = vec![0u8; n as usize];
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, rd.read_exact(&mut buf)).await {
            Ok(Ok(_)) => {}
            _ => return Ok("connection ended during the handshake"),
        }
        let req = ConnectRequest::decode(&buf).map_err(|e| e.to_string())?;
        self.shared.stats.received.fetch_add(1, Ordering::Relaxed);
        if let Flow::Close(why) = self.handshake(req) {
            return Ok(why);
        }
        let mut closed = self.sink.closed.subscribe();
        let mut shutdown = self.shared.shutdown.subscribe();
        loop {
            // Back-pressure: stop taking requests while too much output is queued.
            while self.sink.queued() > MAX_PENDING && !self.sink.is_closed() {
                let drained = self.sink.drained.notified();
                tokio::select! {
                    _ = drained => {}
                    _ = closed.wait_for(|c| *c) => return Ok("closed"),
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
            let frame = tokio::select! {
                r = read_frame(rd, max, &mut buf) => r?,
                _ = closed.wait_for(|c| *c) => return Ok("closed by the server"),
                _ = shutdown.wait_for(|s| *s) => return Ok("server shutting down"),
            };
            if frame.is_none() {
                return Ok("client closed the connection");
            }
            let started = Instant::now();
            self.shared.stats.received.fetch_add(1, Ordering::Relaxed);
            self.sink.received.fetch_add(1, Ordering::Relaxed);
            if buf.len() < 8 {
                return Err(format!("request of {} bytes has no header", buf.len()));
            }
            let xid = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
            let opcode = i32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
            let req = Request::decode(opcode, &buf[8..])
                .map_err(|e| format!("opcode {opcode}, xid {xid}: {e}"))?;
            match self.handle(xid, opcode, req, started) {
                Flow::Continue => {}
                Flow::Close(why) => return Ok(why),
            }
        }
    }

    fn handshake(&mut self, req: ConnectRequest) -> Flow {
        let cfg = &self.shared.config;
        let timeout_ms = req
            .timeout
            .clamp(cfg.min_session_timeout_ms(), cfg.max_session_timeout_ms());
        let timeout = Duration::from_millis(timeout_ms.max(0) as u64);
        let store = self.shared.store.clone();
        let mut inner = store.lock();
        let last = inner.tree.last_zxid();
        if req.last_zxid_seen > last {
            tracing::warn!(
                peer = %self.sink.peer,
                client_zxid = format!("0x{:x}", req.last_zxid_seen),
                server_zxid = format!("0x{last:x}"),
                "client has seen a newer zxid than this server has; refusing the connection"
            );
            self.sink.close("client ahead of server");
            return Flow::Close("client has seen a newer zxid than the server");
        }
        let (session, passwd, timeout_ms) = if req.session_id == 0 {
            let id = inner.open_wire(timeout, self.sink.id);
            tracing::debug!(peer = %self.sink.peer, session = format!("0x{id:x}"), timeout_ms, "new session");
            (id, inner.password(id), timeout_ms)
        } else {
            let ok = req.passwd.as_slice() == inner.password(req.session_id).as_slice();
            match ok
                .then(|| inner.reattach(req.session_id, timeout, self.sink.id))
                .flatten()
            {
                Some(previous) => {
                    if let Some(prev) = previous.and_then(|c| inner.wire.sink(c)) {
                        prev.close("session moved to another connection");
                    }
                    tracing::debug!(peer = %self.sink.peer, session = format!("0x{:x}", req.session_id), "session re-attached");
                    (req.session_id, inner.password(req.session_id), timeout_ms)
                }
                None => {
                    tracing::debug!(peer = %self.sink.peer, session = format!("0x{:x}", req.session_id), "re-attach refused: session expired or wrong password");
                    let mut w = Writer::frame();
                    w.int(0).int(0).long(0).buffer(&[0u8; 16]);
                    if let Some(ro) = req.read_only {
                        w.boolean(ro);
                    }
                    self.sink.push(last, w.finish_frame(), None);
                    self.sink.close("session expired");
                    return Flow::Close("session expired");
                }
            }
        };
        self.session = session;
        self.sink.session.store(session, Ordering::Relaxed);
        self.sink.timeout.store(timeout_ms, Ordering::Relaxed);
        inner.wire.add_conn(self.sink.id, self.sink.clone());
        let mut w = Writer::frame();
        w.int(0).int(timeout_ms).long(session).buffer(&passwd);
        if req.read_only.is_some() {
            // Echoed only when the client sent it; this server is never read-only.
            w.boolean(false);
        }
        let tag = inner.tree.last_zxid();
        self.sink.push(tag, w.finish_frame(), None);
        Flow::Continue
    }

    fn cleanup(&mut self) {
        let mut inner = self.shared.store.lock();
        inner.wire.remove_conn(self.sink.id);
        if self.session != 0 {
            inner.detach(self.session, self.sink.id);
        }
    }

    fn handle(&mut self, xid: i32, opcode: i32, req: Request, started: Instant) -> Flow {
        let store = self.shared.store.clone();
        let mut guard = store.lock();
        let inner = &mut *guard;
        inner.touch(self.session);
        self.sink.last_cxid.store(xid, Ordering::Relaxed);
        *self.sink.last_op.lock().unwrap_or_else(|e| e.into_inner()) = op_name(opcode);
        let session = self.session;
        let conn = self.sink.id;
        // Body of a successful reply, or an error code.
        let mut flow = Flow::Continue;
        let result: Result<Writer, i32> = match req {
            Request::Ping => Ok(Writer::new()),
            Request::Create(opcode, c) => {
                let mode = if opcode == op::CREATE_TTL && !matches!(c.flags, 5 | 6) {
                    None
                } else {
                    mode_from_flag(c.flags, c.ttl)
                };
                match mode {
                    None => Err(fail_in_prep(inner, session, err::BAD_ARGUMENTS)),
                    Some(mode) => {
                        let pre = inner
                            .tree
                            .wire_create_path_error(&c.path, mode.is_sequential());
                        let (_, r) = inner.commit(TxnBody::Op {
                            session,
                            op: Op::create(c.path.clone(), c.data, mode),
                        });
                        match (pre, op_result(r)) {
                            (Some(e), _) => Err(proto::code_of(&e)),
                            (None, Ok(OpResult::Create { path, stat })) => {
                                let mut w = Writer::new();
                                w.string(&path);
                                if opcode != op::CREATE {
                                    w.stat(&stat);
                                }
                                Ok(w)
                            }
                            (None, Ok(_)) => Err(err::SYSTEM_ERROR),
                            (None, Err(e)) => Err(proto::code_of(&e)),
                        }
                    }
                }
            }
            Request::Delete { path, version } => {
                let (_, r) = inner.commit(TxnBody::Op {
                    session,
                    op: Op::delete(path, version_opt(version)),
                });
                op_result(r)
                    .map(|_| Writer::new())
                    .map_err(|e| proto::code_of(&e))
            }
            Request::SetData {
                path,
                data,
                version,
            } => {
                let (_, r) = inner.commit(TxnBody::Op {
                    session,
                    op: Op::set(path, data, version_opt(version)),
                });
                match op_result(r) {
                    Ok(OpResult::SetData { stat }) => {
                        let mut w = Writer::new();
                        w.stat(&stat);
                        Ok(w)
                    }
                    Ok(_) => Err(err::SYSTEM_ERROR),
                    Err(e) => Err(proto::code_of(&e)),
                }
            }
            Request::Exists { path, watch } => {
                let found = inner.tree.lookup(&path).map(|(_, s)| s);
                if watch {
                    inner.wire.add(conn, WireKind::Data, &path);
                }
                match found {
                    Some(stat) => {
                        let mut w = Writer::new();
                        w.stat(&stat);
                        Ok(w)
                    }
                    None => Err(err::NO_NODE),
                }
            }
            Request::GetData { path, watch } => match inner.tree.lookup(&path) {
                Some((data, stat)) => {
                    let mut w = Writer::new();
                    w.buffer(data).stat(&stat);
                    if watch {
                        inner.wire.add(conn, WireKind::Data, &path);
                    }
                    Ok(w)
                }
                None => Err(err::NO_NODE),
            },
            Request::GetAcl { path } => match inner.tree.lookup(&path) {
                Some((_, stat)) => {
                    let mut w = Writer::new();
                    write_acls(&mut w, &[Acl::open()]);
                    w.stat(&stat);
                    Ok(w)
                }
                None => Err(err::NO_NODE),
            },
            Request::SetAcl { path, acl, version } => {
                if acl.is_empty() {
                    Err(fail_in_prep(inner, session, err::INVALID_ACL))
                } else {
                    let (_, r) = inner.commit(TxnBody::SetAcl {
                        session,
                        path,
                        version,
                    });
                    match r {
                        TxnResult::Acl(Ok(stat)) => {
                            let mut w = Writer::new();
                            w.stat(&stat);
                            Ok(w)
                        }
                        TxnResult::Acl(Err(e)) => Err(proto::code_of(&e)),
                        _ => Err(err::SYSTEM_ERROR),
                    }
                }
            }
            Request::GetChildren { path, watch } | Request::GetChildren2 { path, watch } => {
                match inner.tree.lookup_children(&path) {
                    Some((kids, stat)) => {
                        let mut w = Writer::new();
                        w.strings(&kids);
                        if opcode == op::GET_CHILDREN2 {
                            w.stat(&stat);
                        }
                        if watch {
                            inner.wire.add(conn, WireKind::Child, &path);
                        }
                        Ok(w)
                    }
                    None => Err(err::NO_NODE),
                }
            }
            Request::Sync { path } => {
                let mut w = Writer::new();
                w.string(&path);
                Ok(w)
            }
            Request::Check { path, .. } => {
                // ZooKeeper never answers a check outside a multi; neither do we.
                tracing::warn!(peer = %self.sink.peer, %path, xid, "check outside a multi: not answered (as ZooKeeper)");
                return Flow::Continue;
            }
            Request::Multi(ops) => Ok(multi(inner, session, ops)),
            Request::MultiRead(ops) => Ok(multi_read(inner, ops)),
            Request::Reconfig => Err(err::RECONFIG_DISABLED),
            Request::CheckWatches { path, kind } | Request::RemoveWatches { path, kind } => {
                let remove = opcode == op::REMOVE_WATCHES;
                match watch_kinds(kind) {
                    None => Err(err::BAD_ARGUMENTS),
                    Some(kinds) => {
                        let mut found = false;
                        for k in kinds {
                            found |= if remove {
                                inner.wire.remove(conn, *k, &path)
                            } else {
                                inner.wire.has(conn, *k, &path)
                            };
                        }
                        if found {
                            Ok(Writer::new())
                        } else {
                            Err(err::NO_WATCHER)
                        }
                    }
                }
            }
            Request::Auth { scheme, auth } => {
                let user = String::from_utf8_lossy(&auth);
                let user = user.split(':').next().unwrap_or("").to_string();
                self.auths.push((scheme, user));
                Ok(Writer::new())
            }
            Request::SetWatches(sw) => {
                set_watches(inner, conn, &self.sink, sw);
                Ok(Writer::new())
            }
            Request::GetEphemerals { prefix } => {
                let paths = inner.tree.ephemerals_of(session, &prefix);
                let mut w = Writer::new();
                w.strings(&paths);
                Ok(w)
            }
            Request::GetAllChildrenNumber { path } => match inner.tree.all_children_number(&path) {
                Ok(n) => {
                    let mut w = Writer::new();
                    w.int(n.min(i32::MAX as usize) as i32);
                    Ok(w)
                }
                Err(_) => Err(err::NO_NODE),
            },
            Request::AddWatch { path, mode } => {
                let kind = match mode {
                    0 => Some(WireKind::Persistent),
                    1 => Some(WireKind::Recursive),
                    _ => None,
                };
                match kind {
                    Some(k) => {
                        inner.wire.add(conn, k, &path);
                        let mut w = Writer::new();
                        w.int(0);
                        Ok(w)
                    }
                    None => Err(err::BAD_ARGUMENTS),
                }
            }
            Request::WhoAmI => {
                let mut w = Writer::new();
                w.int(1 + self.auths.len() as i32);
                w.string("ip").string(&self.sink.peer.ip().to_string());
                for (scheme, user) in &self.auths {
                    w.string(scheme).string(user);
                }
                Ok(w)
            }
            Request::CloseSession => {
                inner.close_wire(session);
                self.session = 0;
                flow = Flow::Close("client closed its session");
                Ok(Writer::new())
            }
            Request::Unknown(code) => {
                tracing::warn!(peer = %self.sink.peer, opcode = code, "unknown opcode: answering Unimplemented and closing");
                flow = Flow::Close("unknown opcode");
                Err(err::UNIMPLEMENTED)
            }
        };
        let zxid = inner.tree.last_zxid();
        let (code, body) = match result {
            Ok(body) => (err::OK, Some(body)),
            Err(code) => (code, None),
        };
        let mut w = reply_frame(xid, zxid, code);
        if let Some(body) = body {
            w.raw(&body.into_bytes());
        }
        self.sink.last_zxid.store(zxid, Ordering::Relaxed);
        self.sink.push(zxid, w.finish_frame(), Some(started));
        if let Flow::Close(why) = flow {
            self.sink.close(why);
        }
        flow
    }
}

/// Consumes a zxid for a write refused before it reached the tree (as ZooKeeper's error txns do)
/// and returns `code`.
fn fail_in_prep(inner: &mut Inner, session: SessionId, code: i32) -> i32 {
    inner.commit(TxnBody::Multi {
        session,
        ops: Vec::new(),
    });
    code
}

fn version_opt(v: i32) -> Option<i32> {
    (v != -1).then_some(v)
}

fn op_result(r: TxnResult) -> Result<OpResult, Error> {
    match r {
        TxnResult::Op(r) => r,
        _ => Err(Error::Backend {
            message: "unexpected transaction result".into(),
        }),
    }
}

fn watch_kinds(kind: i32) -> Option<&'static [WireKind]> {
    const CHILD: &[WireKind] = &[WireKind::Child];
    const DATA: &[WireKind] = &[WireKind::Data];
    const ANY: &[WireKind] = &[
        WireKind::Data,
        WireKind::Child,
        WireKind::Persistent,
        WireKind::Recursive,
    ];
    const PERSISTENT: &[WireKind] = &[WireKind::Persistent];
    const RECURSIVE: &[WireKind] = &[WireKind::Recursive];
    match kind {
        1 => Some(CHILD),
        2 => Some(DATA),
        3 => Some(ANY),
        4 => Some(PERSISTENT),
        5 => Some(RECURSIVE),
        _ => None,
    }
}

fn multi_header(w: &mut Writer, t: i32, e: i32) {
    w.int(t).boolean(false).int(e);
}

/// Runs a multi and writes its MultiResponse.
fn multi(inner: &mut Inner, session: SessionId, ops: Vec<MultiOp>) -> Writer {
    let mut core_ops = Vec::with_capacity(ops.len());
    let mut kinds = Vec::with_capacity(ops.len());
    let mut bad_at = None;
    for (i, o) in ops.into_iter().enumerate() {
        match o {
            MultiOp::Create(t, c) => {
                let mode = if t == op::CREATE_TTL && !matches!(c.flags, 5 | 6) {
                    None
                } else {
                    mode_from_flag(c.flags, c.ttl)
                };
                match mode {
                    Some(mode) => core_ops.push(Op::create(c.path, c.data, mode)),
                    None => {
                        bad_at.get_or_insert(i);
                        core_ops.push(Op::check("/", None));
                    }
                }
                kinds.push(t);
            }
            MultiOp::Delete { path, version } => {
                core_ops.push(Op::delete(path, version_opt(version)));
                kinds.push(op::DELETE);
            }
            MultiOp::SetData {
                path,
                data,
                version,
            } => {
                core_ops.push(Op::set(path, data, version_opt(version)));
                kinds.push(op::SET_DATA);
            }
            MultiOp::Check { path, version } => {
                core_ops.push(Op::check(path, version_opt(version)));
                kinds.push(op::CHECK);
            }
        }
    }
    let n = core_ops.len();
    let mut w = Writer::new();
    let outcome: Result<Vec<OpResult>, (usize, Vec<MultiOpError>)> = match bad_at {
        Some(i) => {
            fail_in_prep(inner, session, err::BAD_ARGUMENTS);
            Err((i, MultiOpError::for_failure(n, i, ErrorKind::BadArguments)))
        }
        None => {
            let (_, r) = inner.commit(TxnBody::Multi {
                session,
                ops: core_ops.clone(),
            });
            match r {
                TxnResult::Multi(Ok(results)) => Ok(results),
                TxnResult::Multi(Err(Error::MultiFailed { index, results })) => {
                    Err((index, results))
                }
                _ => Err((
                    0,
                    MultiOpError::for_failure(n.max(1), 0, ErrorKind::Backend),
                )),
            }
        }
    };
    match outcome {
        Ok(results) => {
            for (r, t) in results.iter().zip(&kinds) {
                match r {
                    OpResult::Create { path, stat } => {
                        if *t == op::CREATE {
                            multi_header(&mut w, op::CREATE, 0);
                            w.string(path);
                        } else {
                            multi_header(&mut w, op::CREATE2, 0);
                            w.string(path).stat(stat);
                        }
                    }
                    OpResult::SetData { stat } => {
                        multi_header(&mut w, op::SET_DATA, 0);
                        w.stat(stat);
                    }
                    OpResult::Delete => multi_header(&mut w, op::DELETE, 0),
                    OpResult::Check => multi_header(&mut w, op::CHECK, 0),
                }
            }
        }
        Err((_, results)) => {
            for (i, r) in results.iter().enumerate() {
                let code = match r {
                    MultiOpError::RolledBack => err::OK,
                    MultiOpError::NotRun => err::RUNTIME_INCONSISTENCY,
                    MultiOpError::Failed(kind) => {
                        if *kind == ErrorKind::InvalidPath
                            && kinds.get(i).is_some_and(|t| is_create(*t))
                        {
                            match core_ops.get(i) {
                                Some(Op::Create { path, mode, .. }) => inner
                                    .tree
                                    .wire_create_path_error(path, mode.is_sequential())
                                    .map_or(err::BAD_ARGUMENTS, |e| proto::code_of(&e)),
                                _ => err::BAD_ARGUMENTS,
                            }
                        } else {
                            proto::error_code(*kind)
                        }
                    }
                };
                multi_header(&mut w, op::ERROR, code);
                w.int(code);
            }
        }
    }
    w.int(-1).boolean(true).int(-1);
    w
}

fn is_create(t: i32) -> bool {
    matches!(
        t,
        op::CREATE | op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL
    )
}

/// Runs a multiRead (each read independent) and writes its MultiResponse.
fn multi_read(inner: &Inner, ops: Vec<ReadOp>) -> Writer {
    let mut w = Writer::new();
    for o in ops {
        match o {
            ReadOp::GetData(p) => match inner.tree.lookup(&p) {
                Some((data, stat)) => {
                    multi_header(&mut w, op::GET_DATA, 0);
                    w.buffer(data).stat(&stat);
                }
                None => {
                    multi_header(&mut w, op::ERROR, err::NO_NODE);
                    w.int(err::NO_NODE);
                }
            },
            ReadOp::GetChildren(p) => match inner.tree.lookup_children(&p) {
                Some((kids, _)) => {
                    multi_header(&mut w, op::GET_CHILDREN, 0);
                    w.strings(&kids);
                }
                None => {
                    multi_header(&mut w, op::ERROR, err::NO_NODE);
                    w.int(err::NO_NODE);
                }
            },
        }
    }
    w.int(-1).boolean(true).int(-1);
    w
}

/// Re-registers a reconnecting client's watches, firing at once those whose event it missed.
fn set_watches(inner: &mut Inner, conn: ConnId, sink: &ConnSink, sw: SetWatches) {
    let rel = sw.relative_zxid;
    let tag = inner.tree.last_zxid();
    let fire = |event: EventType, p: &str| {
        sink.push(tag, notification(event, p, -1), None);
    };
    for p in &sw.data {
        match inner.tree.lookup(p) {
            None => fire(EventType::NodeDeleted, p),
            Some((_, s)) if s.mzxid > rel => fire(EventType::NodeDataChanged, p),
            Some(_) => inner.wire.add(conn, WireKind::Data, p),
        }
    }
    for p in &sw.exist {
        match inner.tree.lookup(p) {
            Some(_) => fire(EventType::NodeCreated, p),
            None => inner.wire.add(conn, WireKind::Data, p),
        }
    }
    for p in &sw.child {
        match inner.tree.lookup(p) {
            None => fire(EventType::NodeDeleted, p),
            Some((_, s)) if s.pzxid > rel => fire(EventType::NodeChildrenChanged, p),
            Some(_) => inner.wire.add(conn, WireKind::Child, p),
        }
    }
    for p in &sw.persistent {
        inner.wire.add(conn, WireKind::Persistent, p);
    }
    for p in &sw.recursive {
        inner.wire.add(conn, WireKind::Recursive, p);
    }
}

/// Drains a connection's queue to its socket, holding each frame until the log is durable up to
/// its tag.
async fn write_loop(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Out>,
    durable: Option<watch::Receiver<crate::durable::DurableMark>>,
    sink: Arc<ConnSink>,
    shared: Arc<Shared>,
) {
    let mut durable = durable;
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut frames = 0u64;
    let mut bytes_in_buf = 0usize;
    let mut why: Option<&'static str> = None;
    'outer: while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        let mut batch = 0;
        while let Some(msg) = next.take() {
            match msg {
                Out::Frame {
                    tag,
                    bytes,
                    started,
                } => {
                    if let Some(d) = durable.as_mut() {
                        let ready = {
                            let m = d.borrow();
                            m.zxid >= tag && !m.failed
                        };
                        if !ready {
                            if flush(
                                &mut wr,
                                &mut buf,
                                &sink,
                                &mut bytes_in_buf,
                                &mut frames,
                                &shared,
                            )
                            .await
                            .is_err()
                            {
                                why = Some("write failed");
                                break 'outer;
                            }
                            let ok = match d.wait_for(|m| m.failed || m.zxid >= tag).await {
                                Ok(m) => !m.failed,
                                Err(_) => false,
                            };
                            if !ok {
                                why = Some("transaction log failed");
                                break 'outer;
                            }
                        }
                    }
                    if let Some(t) = started {
                        sink.latency.record(t.elapsed());
                        shared.stats.latency.record(t.elapsed());
                    }
                    bytes_in_buf += bytes.len();
                    buf.extend_from_slice(&bytes);
                    frames += 1;
                }
                Out::Close(reason) => {
                    why = Some(reason);
                    break 'outer;
                }
            }
            batch += 1;
            if batch < 1024 && buf.len() < 1 << 20 {
                next = rx.try_recv().ok();
            }
        }
        if flush(
            &mut wr,
            &mut buf,
            &sink,
            &mut bytes_in_buf,
            &mut frames,
            &shared,
        )
        .await
        .is_err()
        {
            why = Some("write failed");
            break;
        }
    }
    let _ = flush(
        &mut wr,
        &mut buf,
        &sink,
        &mut bytes_in_buf,
        &mut frames,
        &shared,
    )
    .await;
    let _ = wr.shutdown().await;
    tracing::trace!(
        conn = sink.id,
        reason = why.unwrap_or("queue closed"),
        "writer done"
    );
    sink.closed.send_replace(true);
    sink.drained.notify_waiters();
}

async fn flush(
    wr: &mut OwnedWriteHalf,
    buf: &mut Vec<u8>,
    sink: &ConnSink,
    bytes_in_buf: &mut usize,
    frames: &mut u64,
    shared: &Shared,
) -> std::io::Result<()> {
    if buf.is_empty() {
        return Ok(());
    }
    let r = wr.write_all(buf).await;
    buf.clear();
    sink.pending.fetch_sub(*bytes_in_buf, Ordering::AcqRel);
    sink.sent.fetch_add(*frames, Ordering::Relaxed);
    shared.stats.sent.fetch_add(*frames, Ordering::Relaxed);
    *bytes_in_buf = 0;
    *frames = 0;
    sink.drained.notify_waiters();
    r
}

/// ZooKeeper's short names of operations (as `cons` shows them).
fn op_name(opcode: i32) -> &'static str {
    match opcode {
        op::CREATE | op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => "CREA",
        op::DELETE => "DELE",
        op::EXISTS => "EXIS",
        op::GET_DATA => "GETD",
        op::SET_DATA => "SETD",
        op::GET_ACL => "GETA",
        op::SET_ACL => "SETA",
        op::GET_CHILDREN => "GETC",
        op::GET_CHILDREN2 => "GETC",
        op::SYNC => "SYNC",
        op::PING => "PING",
        op::CHECK => "CHEC",
        op::MULTI => "MULT",
        op::MULTI_READ => "MLTR",
        op::RECONFIG => "RECO",
        op::CHECK_WATCHES => "CHKW",
        op::REMOVE_WATCHES => "REMW",
        op::AUTH => "AUTH",
        op::SET_WATCHES | op::SET_WATCHES2 => "SETW",
        op::GET_EPHEMERALS => "GETE",
        op::GET_ALL_CHILDREN_NUMBER => "GETACN",
        op::ADD_WATCH => "ADDW",
        op::WHO_AM_I => "HOMI",
        op::CLOSE_SESSION => "CLOS",
        _ => "UNKN",
    }
}
