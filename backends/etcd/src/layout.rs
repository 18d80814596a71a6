//! The key layout: how the znode tree is spread over etcd keys, and how values are encoded.
//!
//! With namespace prefix `P` (from the URL, `/menagerie` by default), a node at path `p` with
//! depth `d` (number of path components, 4 decimal digits) has up to four keys:
//!
//! | key | value | lease | what it gives |
//! |---|---|---|---|
//! | `P/n/dddd p` | 13-digit mtime, `\|`, data | the session's, for ephemerals | existence, data, czxid (create_revision), mzxid (mod_revision), version, ephemeralOwner |
//! | `P/m p` | `v1 <ctime> <kind>` | as the node | ctime; bumped (ignore_value) on every child create: its version counts child creates, its mod_revision is the last one |
//! | `P/d p` | empty | none | blind-put on every child delete: its mod_revision is the last one |
//! | `P/o p` | `<voff> <coff>` | as the node | only after a multi wrote the node (or its child counter) twice in one transaction: the offsets that keep version and the child counter exact |
//!
//! plus one key per live session, `P/s/<lease id in hex>`, attached to the session's lease.

use etcd_client::KeyValue;
use menagerie_core::path;
use menagerie_core::{Error, Result, Stat};

/// Length of the header in front of a node's data: 13 ASCII digits of mtime and a `|`.
pub(crate) const HEADER_LEN: usize = 14;

/// Deepest path the layout can name (the depth is written with 4 digits).
pub(crate) const MAX_DEPTH: usize = 9999;

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// What kind of node (beyond ephemeral, which the lease says).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Plain,
}

/// The key names of one namespace.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// The namespace prefix, without a trailing slash (e.g. `/menagerie`).
    prefix: String,
}

/// Number of components of a path (`/` = 0).
pub(crate) fn depth(p: &str) -> usize {
    if p == "/" {
        0
    } else {
        p.bytes().filter(|b| *b == b'/').count()
    }
}

/// The smallest key greater than every key starting with `prefix` (etcd's prefix range end).
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// The key right after `key` (for ranges that exclude `key`).
pub(crate) fn key_after(key: &[u8]) -> Vec<u8> {
    let mut k = key.to_vec();
    k.push(0);
    k
}

impl Layout {
    /// The layout under `prefix` (`/x/y`; empty or `/` means `/menagerie`).
    pub(crate) fn new(prefix: &str) -> Layout {
        let trimmed = prefix.trim_end_matches('/');
        let prefix = if trimmed.is_empty() {
            "/menagerie".to_string()
        } else if trimmed.starts_with('/') {
            trimmed.to_string()
        } else {
            format!("/{trimmed}")
        };
        Layout { prefix }
    }

    /// The namespace prefix (no trailing slash).
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Every key of the namespace starts with this.
    pub(crate) fn namespace(&self) -> Vec<u8> {
        format!("{}/", self.prefix).into_bytes()
    }

    /// Checks that the layout can name `p`.
    pub(crate) fn check_depth(p: &str) -> Result<()> {
        if depth(p) > MAX_DEPTH {
            return Err(Error::BadArguments {
                reason: format!("the etcd backend supports paths up to {MAX_DEPTH} levels deep"),
            });
        }
        Ok(())
    }

    /// The node key of `p`.
    pub(crate) fn node(&self, p: &str) -> Vec<u8> {
        if p == "/" {
            format!("{}/n/0000/", self.prefix).into_bytes()
        } else {
            format!("{}/n/{:04}{}", self.prefix, depth(p), p).into_bytes()
        }
    }

    /// The meta key of `p`.
    pub(crate) fn meta(&self, p: &str) -> Vec<u8> {
        format!("{}/m{}", self.prefix, p).into_bytes()
    }

    /// The child-delete marker of `p`.
    pub(crate) fn deletes(&self, p: &str) -> Vec<u8> {
        format!("{}/d{}", self.prefix, p).into_bytes()
    }

    /// The offsets key of `p`.
    pub(crate) fn offsets(&self, p: &str) -> Vec<u8> {
        format!("{}/o{}", self.prefix, p).into_bytes()
    }

    /// The key of a session.
    pub(crate) fn session(&self, lease: i64) -> Vec<u8> {
        format!("{}/s/{:016x}", self.prefix, lease).into_bytes()
    }

    /// The prefix of the node keys of `p`'s children.
    pub(crate) fn children_prefix(&self, p: &str) -> Vec<u8> {
        let d = depth(p) + 1;
        if p == "/" {
            format!("{}/n/{:04}/", self.prefix, d).into_bytes()
        } else {
            format!("{}/n/{:04}{}/", self.prefix, d, p).into_bytes()
        }
    }

    /// The node key of child `name` of `parent`.
    pub(crate) fn child(&self, parent: &str, name: &str) -> Vec<u8> {
        self.node(&path::join(parent, name))
    }

    /// What a key of this namespace names.
    pub(crate) fn classify(&self, key: &[u8]) -> KeyKind {
        let Ok(key) = std::str::from_utf8(key) else {
            return KeyKind::Other;
        };
        let Some(rest) = key
            .strip_prefix(self.prefix.as_str())
            .and_then(|r| r.strip_prefix('/'))
        else {
            return KeyKind::Other;
        };
        if let Some(r) = rest.strip_prefix("n/") {
            if r.len() >= 5 && r.as_bytes()[..4].iter().all(u8::is_ascii_digit) {
                let p = &r[4..];
                if p == "/" {
                    return KeyKind::Node("/".to_string());
                }
                if p.starts_with('/') && !p.ends_with('/') {
                    return KeyKind::Node(p.to_string());
                }
            }
            return KeyKind::Other;
        }
        for (tag, meta) in [("m", true), ("o", false)] {
            if let Some(p) = rest.strip_prefix(tag).filter(|p| p.starts_with('/')) {
                if p != "/" && p.ends_with('/') {
                    return KeyKind::Other;
                }
                return if meta {
                    KeyKind::Meta(p.to_string())
                } else {
                    KeyKind::Offsets(p.to_string())
                };
            }
        }
        if let Some(r) = rest.strip_prefix("s/") {
            if let Ok(lease) = i64::from_str_radix(r, 16) {
                return KeyKind::Session(lease);
            }
            return KeyKind::Other;
        }
        KeyKind::Other
    }
}

/// What a key is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyKind {
    /// The node key of this path.
    Node(String),
    /// The meta key of this path (its version counts the child creates).
    Meta(String),
    /// The offsets key of this path.
    Offsets(String),
    /// The key of the session with this lease.
    Session(i64),
    /// A delete-marker key, or a foreign key.
    Other,
}

/// The value of a node key.
pub(crate) fn node_value(mtime: i64, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER_LEN + data.len());
    v.extend_from_slice(format!("{:013}|", mtime.clamp(0, 9_999_999_999_999)).as_bytes());
    v.extend_from_slice(data);
    v
}

/// Splits a node value into (mtime, data). A value without the header is all data (mtime 0).
pub(crate) fn split_node_value(v: &[u8]) -> (i64, &[u8]) {
    if v.len() >= HEADER_LEN && v[HEADER_LEN - 1] == b'|' && v[..13].iter().all(u8::is_ascii_digit)
    {
        let mtime = std::str::from_utf8(&v[..13])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (mtime, &v[HEADER_LEN..])
    } else {
        (0, v)
    }
}

/// The value of a meta key.
pub(crate) fn meta_value(ctime: i64, kind: Kind) -> Vec<u8> {
    let k = match kind {
        Kind::Plain => "p",
    };
    format!("v1 {ctime} {k}").into_bytes()
}

/// ctime from a meta value (0 when unreadable).
pub(crate) fn meta_ctime(v: &[u8]) -> i64 {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.split(' ').nth(1))
        .and_then(|t| t.parse().ok())
        .unwrap_or(0)
}

/// The value of an offsets key.
pub(crate) fn offsets_value(voff: i64, coff: i64) -> Vec<u8> {
    format!("{voff} {coff}").into_bytes()
}

/// (version offset, child-counter offset) from an offsets value.
pub(crate) fn parse_offsets(v: &[u8]) -> (i64, i64) {
    let s = std::str::from_utf8(v).unwrap_or("");
    let mut it = s.split(' ').map(|t| t.parse::<i64>().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// The subset of a `KeyValue` the backend keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Kv {
    pub(crate) create_revision: i64,
    pub(crate) mod_revision: i64,
    pub(crate) version: i64,
    pub(crate) lease: i64,
    pub(crate) value: Vec<u8>,
}

impl From<&KeyValue> for Kv {
    fn from(kv: &KeyValue) -> Kv {
        Kv {
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
            version: kv.version(),
            lease: kv.lease(),
            value: kv.value().to_vec(),
        }
    }
}

/// Everything needed for a node's Stat, read at one revision.
#[derive(Debug, Clone, Default)]
pub(crate) struct NodeKeys {
    pub(crate) n: Option<Kv>,
    pub(crate) m: Option<Kv>,
    pub(crate) o: Option<Kv>,
    pub(crate) d: Option<Kv>,
    pub(crate) num_children: i64,
}

/// (version offset, child-counter offset) of a node, from its offsets key.
pub(crate) fn offsets_of(o: Option<&Kv>) -> (i64, i64) {
    o.map(|o| parse_offsets(&o.value)).unwrap_or((0, 0))
}

/// The node's child-create counter (the next sequence number), from its meta and offsets keys.
pub(crate) fn counter_of(m: Option<&Kv>, o: Option<&Kv>) -> i64 {
    let (_, coff) = offsets_of(o);
    m.map(|m| m.version - 1 + coff).unwrap_or(0)
}

/// The node's data version, from its node and offsets keys.
pub(crate) fn version_of(n: &Kv, o: Option<&Kv>) -> i64 {
    let (voff, _) = offsets_of(o);
    n.version - 1 + voff
}

impl NodeKeys {
    /// The Stat, when the node exists.
    pub(crate) fn stat(&self) -> Option<Stat> {
        let n = self.n.as_ref()?;
        let (mtime, data) = split_node_value(&n.value);
        let counter = counter_of(self.m.as_ref(), self.o.as_ref()) as i32;
        let kids = self.num_children.clamp(0, i32::MAX as i64) as i32;
        let pzxid = [
            Some(n.create_revision),
            self.m.as_ref().map(|m| m.mod_revision),
            self.d.as_ref().map(|d| d.mod_revision),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(n.create_revision);
        Some(Stat {
            czxid: n.create_revision,
            mzxid: n.mod_revision,
            ctime: self
                .m
                .as_ref()
                .map(|m| meta_ctime(&m.value))
                .unwrap_or(mtime),
            mtime,
            version: version_of(n, self.o.as_ref()) as i32,
            cversion: counter.wrapping_mul(2).wrapping_sub(kids),
            aversion: 0,
            ephemeral_owner: n.lease,
            data_length: data.len().min(i32::MAX as usize) as i32,
            num_children: kids,
            pzxid,
        })
    }

    /// The largest revision among the keys read (what the reader has seen).
    pub(crate) fn seen(&self) -> i64 {
        [&self.n, &self.m, &self.o, &self.d]
            .into_iter()
            .flatten()
            .map(|k| k.mod_revision)
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_readable_and_depth_ordered() {
        let l = Layout::new("/app/");
        assert_eq!(l.node("/"), b"/app/n/0000/");
        assert_eq!(l.node("/a/b"), b"/app/n/0002/a/b");
        assert_eq!(l.children_prefix("/"), b"/app/n/0001/");
        assert_eq!(l.children_prefix("/a"), b"/app/n/0002/a/");
        assert_eq!(l.meta("/a"), b"/app/m/a");
        assert_eq!(l.session(255), b"/app/s/00000000000000ff");
        assert_eq!(l.classify(b"/app/n/0002/a/b"), KeyKind::Node("/a/b".into()));
        assert_eq!(l.classify(b"/app/n/0000/"), KeyKind::Node("/".into()));
        assert_eq!(
            l.classify(b"/app/s/00000000000000ff"),
            KeyKind::Session(255)
        );
        assert_eq!(l.classify(b"/app/m/a"), KeyKind::Meta("/a".into()));
        assert_eq!(l.classify(b"/app/m/"), KeyKind::Meta("/".into()));
        assert_eq!(l.classify(b"/app/o/a/b"), KeyKind::Offsets("/a/b".into()));
        assert_eq!(l.classify(b"/app/d/a"), KeyKind::Other);
        assert_eq!(l.classify(b"/app/mx"), KeyKind::Other);
        assert_eq!(l.classify(b"/other/n/0001/a"), KeyKind::Other);
        assert_eq!(Layout::new("").prefix(), "/menagerie");
    }

    #[test]
    fn values_round_trip() {
        let v = node_value(1_700_000_000_123, b"|data");
        assert_eq!(split_node_value(&v), (1_700_000_000_123, &b"|data"[..]));
        assert_eq!(split_node_value(b"raw"), (0, &b"raw"[..]));
        assert_eq!(meta_ctime(&meta_value(42, Kind::Plain)), 42);
        assert_eq!(parse_offsets(&offsets_value(2, -1)), (2, -1));
        assert_eq!(parse_offsets(b"garbage"), (0, 0));
        assert_eq!(prefix_end(b"a\xff"), b"b");
    }
}
