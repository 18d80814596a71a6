//! # menagerie-etcd
//!
//! menagerie's etcd v3 backend: ZooKeeper's data model — a tree of nodes with versions,
//! sequential names, ephemerals, atomic multi and one-shot / persistent watches — on an etcd
//! cluster (3.4 or later), through the `etcd-client` crate. URL:
//! `etcd://h1:2379,h2:2379/prefix?session_timeout_ms=N`.
//!
//! ```no_run
//! # async fn demo() -> menagerie_core::Result<()> {
//! use menagerie_core::{url::ConnectUrl, CreateMode};
//! let client = menagerie_etcd::connect(&ConnectUrl::parse("etcd://127.0.0.1:2379/app")?).await?;
//! client.create_all("/services/web/i-1", b"10.0.0.1:80", CreateMode::Ephemeral).await?;
//! assert_eq!(client.children("/services/web").await?.0, ["i-1"]);
//! # Ok(()) }
//! ```
//!
//! ## Key layout
//!
//! Everything lives under the URL's prefix `P` (`/menagerie` when the URL has none). A node at
//! path `p` with depth `d` (its number of components, as 4 digits) is up to four keys:
//!
//! | key | value | lease | gives |
//! |---|---|---|---|
//! | `P/n/dddd p` | 13-digit mtime, `\|`, the data | the session's, for ephemerals | existence, data, czxid = create_revision, mzxid = mod_revision, version = etcd version − 1, ephemeralOwner = lease |
//! | `P/m p` | `v1 <ctime> p` | as the node | ctime; re-put (ignore_value) on every child create, so its version − 1 counts child creates (the sequence counter) and its mod_revision is the last one |
//! | `P/d p` | empty | none | re-put on every child delete: its mod_revision is the last one (pzxid = max of the two) |
//! | `P/o p` | `<voff> <coff>` | as the node | only after one multi wrote a node (or its child counter) twice: offsets that keep version and counter exact |
//!
//! and one key per live session, `P/s/<lease id, 16 hex digits>`, attached to its lease. The
//! depth in node keys makes a node's direct children one range (`P/n/<d+1> p/`), without the
//! grandchildren. After `create /config "{…}"`, `create /workers` and an ephemeral-sequential
//! `/workers/w-` with data `10.0.0.7`, then `create` + `delete /workers/tmp` and a multi that sets
//! `/config` twice (to `a`, then `b`), `etcdctl get --prefix /app/` on etcd 3.4 shows (key, then
//! value; see LAYOUT.md beside this crate for the whole story):
//!
//! ```text
//! /app/d/workers
//!
//! /app/m/
//! v1 1795302972753 p
//! /app/m/config
//! v1 1795302972759 p
//! /app/m/workers
//! v1 1795302972820 p
//! /app/m/workers/w-0000000000
//! v1 1795302972824 p
//! /app/n/0000/
//! 1795302972753|
//! /app/n/0001/config
//! 1795302972829|b
//! /app/n/0001/workers
//! 1795302972820|
//! /app/n/0002/workers/w-0000000000
//! 1795302972824|10.0.0.7
//! /app/o/config
//! 1 0
//! /app/s/694da20065583e06
//! menagerie session, ttl 10s
//! ```
//!
//! ## Operations
//!
//! - Every create, delete, set and multi is ONE etcd transaction: the checks (parent exists, is
//!   not ephemeral, node absent, expected version, no children — a range compare on the child
//!   keys) are compares inside it, the writes its success branch, and its failure branch reads
//!   the keys involved at the same revision, from which the backend names the failing operation
//!   and ZooKeeper's error (per operation, for a multi). A sequential create needs the parent's
//!   counter: it comes from the handle's hint when there is one (one round trip), else from a
//!   read, and the transaction compares it — a concurrent create makes it fail and retry, never
//!   misnumber. The watch stream keeps the hints current; under a parent where other clients
//!   create too, one transaction tries several counter values (nested transactions, each guarded
//!   by its own compares, at most one applied), and lost rounds are retried at once, then with
//!   jittered backoff, always with the latest counter known.
//! - Sessions are leases (TTL = the session timeout in whole seconds, at least 2 s), kept alive
//!   from a background task; see [`EtcdBackend`] for the state changes.
//! - Watches: one watch stream per handle over the whole prefix, dispatched in-process with
//!   ZooKeeper's firing rules; a watch is registered before its read and armed with the read's
//!   revision, so no event in between is lost. Writes (and reads) return only after the stream
//!   has delivered the events they caused (or saw), so a session's own watches have fired.
//! - Containers and TTL nodes are not offered: [`Capabilities`](menagerie_core::Capabilities)
//!   says `container: false, ttl: false` and creating one answers `Unsupported`.
//!
//! ## Limits and differences from ZooKeeper
//!
//! - A multi must fit etcd's limits: 128 operations per transaction branch (each node write is up
//!   to four key operations) and 1.5 MiB per request; beyond them etcd refuses it (BadArguments).
//! - A multi may not delete a node and re-create it (Unsupported); creating then deleting a node
//!   in one multi leaves no trace in etcd, so it fires no watch on that node.
//! - Ephemerals deleted by lease expiry or revocation do not move their parent's pzxid (etcd
//!   deletes them without running our transaction); cversion and numChildren stay exact.
//! - zxids are etcd revisions (one per transaction), not `epoch << 32 | counter`.
#![warn(missing_docs)]

mod backend;
mod error;
#[cfg(feature = "conformance")]
mod factory;
mod layout;
mod plan;
mod watches;

pub use backend::{EtcdBackend, EtcdOptions, DEFAULT_SESSION_TIMEOUT};
#[cfg(feature = "conformance")]
pub use factory::EtcdFactory;

use menagerie_core::url::ConnectUrl;
use menagerie_core::{Client, Error, Result};
use std::sync::Arc;

/// The options an `etcd://` URL names.
///
/// ```
/// use menagerie_core::url::ConnectUrl;
/// let u = ConnectUrl::parse("etcd://a:2379,b:2379/app?session_timeout_ms=4000").unwrap();
/// let o = menagerie_etcd::options_from_url(&u).unwrap();
/// assert_eq!(o.endpoints, ["a:2379", "b:2379"]);
/// assert_eq!((o.prefix.as_str(), o.ttl_secs()), ("/app", 4));
/// ```
pub fn options_from_url(url: &ConnectUrl) -> Result<EtcdOptions> {
    if url.scheme != "etcd" {
        return Err(Error::BadArguments {
            reason: format!("not an etcd URL (scheme {:?})", url.scheme),
        });
    }
    if url.hosts.is_empty() {
        return Err(Error::BadArguments {
            reason: "an etcd URL needs at least one host:port, e.g. etcd://127.0.0.1:2379/app"
                .into(),
        });
    }
    let mut o = EtcdOptions::new(url.hosts.clone(), &url.path);
    if let Some(t) = url.session_timeout {
        o.session_timeout = t;
    }
    Ok(o)
}

/// Opens a session on the server(s) named by `url` (`etcd://h1:2379,h2:2379/prefix`).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let url = menagerie_core::url::ConnectUrl::parse("etcd://127.0.0.1:1").unwrap();
/// assert!(menagerie_etcd::connect(&url).await.is_err());
/// # });
/// ```
pub async fn connect(url: &ConnectUrl) -> Result<Client> {
    let options = options_from_url(url)?;
    let backend = EtcdBackend::connect(options).await?;
    Ok(Client::new(Arc::new(backend)))
}
