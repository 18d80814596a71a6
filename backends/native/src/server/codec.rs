//! Jute, ZooKeeper's record encoding: big-endian integers, length-prefixed buffers, strings and
//! vectors (`-1` for null), and the records of the client protocol.
//!
//! Decoding never panics: every read is bounds-checked and a short or inconsistent record is a
//! [`DecodeError`].

use menagerie_core::Stat;
use std::fmt;

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// What was being read.
    pub what: &'static str,
    /// What was wrong with it.
    pub why: &'static str,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed {}: {}", self.what, self.why)
    }
}

impl std::error::Error for DecodeError {}

/// Result of decoding.
pub type DecodeResult<T> = Result<T, DecodeError>;

/// A cursor over a received record.
///
/// ```
/// use menagerie_native::server::codec::Reader;
/// let mut r = Reader::new(&[0, 0, 0, 2, b'h', b'i', 1]);
/// assert_eq!(r.string("name").unwrap(), "hi");
/// assert!(r.boolean("flag").unwrap());
/// assert!(r.is_empty());
/// ```
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Reads from `buf`.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    /// True when everything was read.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.buf
    }

    fn take(&mut self, n: usize, what: &'static str) -> DecodeResult<&'a [u8]> {
        if self.buf.len() < n {
            return Err(DecodeError {
                what,
                why: "record ends early",
            });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// A big-endian i32.
    pub fn int(&mut self, what: &'static str) -> DecodeResult<i32> {
        let b = self.take(4, what)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A big-endian i64.
    pub fn long(&mut self, what: &'static str) -> DecodeResult<i64> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    /// A one-byte boolean (any non-zero byte is true, as Java's readBoolean).
    pub fn boolean(&mut self, what: &'static str) -> DecodeResult<bool> {
        Ok(self.take(1, what)?[0] != 0)
    }

    /// A single byte.
    pub fn byte(&mut self, what: &'static str) -> DecodeResult<u8> {
        Ok(self.take(1, what)?[0])
    }

    /// A length-prefixed buffer; `None` for the null buffer (length -1).
    pub fn buffer_opt(&mut self, what: &'static str) -> DecodeResult<Option<&'a [u8]>> {
        let len = self.int(what)?;
        if len < 0 {
            if len == -1 {
                return Ok(None);
            }
            return Err(DecodeError {
                what,
                why: "negative length",
            });
        }
        self.take(len as usize, what).map(Some)
    }

    /// A length-prefixed buffer, null read as empty.
    pub fn buffer(&mut self, what: &'static str) -> DecodeResult<&'a [u8]> {
        Ok(self.buffer_opt(what)?.unwrap_or(&[]))
    }

    /// A UTF-8 string (null read as empty).
    pub fn string(&mut self, what: &'static str) -> DecodeResult<String> {
        let b = self.buffer(what)?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError {
            what,
            why: "not UTF-8",
        })
    }

    /// A vector count (null read as 0), bounded by what the remaining bytes could hold at
    /// `min_elem` bytes per element.
    pub fn count(&mut self, what: &'static str, min_elem: usize) -> DecodeResult<usize> {
        let n = self.int(what)?;
        if n == -1 {
            return Ok(0);
        }
        if n < 0 {
            return Err(DecodeError {
                what,
                why: "negative count",
            });
        }
        let n = n as usize;
        if n.saturating_mul(min_elem.max(1)) > self.buf.len() {
            return Err(DecodeError {
                what,
                why: "count larger than the record",
            });
        }
        Ok(n)
    }

    /// A vector of strings (null read as empty).
    pub fn strings(&mut self, what: &'static str) -> DecodeResult<Vec<String>> {
        let n = self.count(what, 4)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.string(what)?);
        }
        Ok(out)
    }
}

/// Builds an outgoing record.
///
/// ```
/// use menagerie_native::server::codec::Writer;
/// let mut w = Writer::new();
/// w.int(7).string("/a");
/// assert_eq!(w.into_bytes(), [0, 0, 0, 7, 0, 0, 0, 2, b'/', b'a']);
/// ```
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty record.
    pub fn new() -> Writer {
        Writer::default()
    }

    /// An empty frame: a 4-byte length placeholder that [`Writer::finish_frame`] fills in.
    pub fn frame() -> Writer {
        Writer {
            buf: vec![0, 0, 0, 0],
        }
    }

    /// Writes an i32.
    pub fn int(&mut self, v: i32) -> &mut Writer {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Writes an i64.
    pub fn long(&mut self, v: i64) -> &mut Writer {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    /// Writes a boolean byte.
    pub fn boolean(&mut self, v: bool) -> &mut Writer {
        self.buf.push(u8::from(v));
        self
    }

    /// Writes one byte.
    pub fn byte(&mut self, v: u8) -> &mut Writer {
        self.buf.push(v);
        self
    }

    /// Writes a length-prefixed buffer.
    pub fn buffer(&mut self, v: &[u8]) -> &mut Writer {
        self.int(v.len() as i32);
        self.buf.extend_from_slice(v);
        self
    }

    /// Writes a string.
    pub fn string(&mut self, v: &str) -> &mut Writer {
        self.buffer(v.as_bytes())
    }

    /// Writes a vector of strings.
    pub fn strings<S: AsRef<str>>(&mut self, v: &[S]) -> &mut Writer {
        self.int(v.len() as i32);
        for s in v {
            self.string(s.as_ref());
        }
        self
    }

    /// Writes a Stat (68 bytes).
    pub fn stat(&mut self, s: &Stat) -> &mut Writer {
        self.long(s.czxid)
            .long(s.mzxid)
            .long(s.ctime)
            .long(s.mtime)
            .int(s.version)
            .int(s.cversion)
            .int(s.aversion)
            .long(s.ephemeral_owner)
            .int(s.data_length)
            .int(s.num_children)
            .long(s.pzxid)
    }

    /// Appends raw bytes.
    pub fn raw(&mut self, v: &[u8]) -> &mut Writer {
        self.buf.extend_from_slice(v);
        self
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The record.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Fills in the length of a record started with [`Writer::frame`] and returns the frame.
    pub fn finish_frame(mut self) -> Vec<u8> {
        let len = (self.buf.len().saturating_sub(4)) as i32;
        if self.buf.len() >= 4 {
            self.buf[..4].copy_from_slice(&len.to_be_bytes());
        }
        self.buf
    }
}

/// Reads a Stat.
pub fn read_stat(r: &mut Reader<'_>) -> DecodeResult<Stat> {
    Ok(Stat {
        czxid: r.long("stat")?,
        mzxid: r.long("stat")?,
        ctime: r.long("stat")?,
        mtime: r.long("stat")?,
        version: r.int("stat")?,
        cversion: r.int("stat")?,
        aversion: r.int("stat")?,
        ephemeral_owner: r.long("stat")?,
        data_length: r.int("stat")?,
        num_children: r.int("stat")?,
        pzxid: r.long("stat")?,
    })
}

/// An ACL entry: permissions for an identity (`scheme:id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    /// Permission bits (READ 1, WRITE 2, CREATE 4, DELETE 8, ADMIN 16).
    pub perms: i32,
    /// Scheme, e.g. `world`, `digest`, `ip`.
    pub scheme: String,
    /// Identity within the scheme, e.g. `anyone`.
    pub id: String,
}

impl Acl {
    /// `world:anyone` with every permission: what menagerie-server answers for every node.
    pub fn open() -> Acl {
        Acl {
            perms: 31,
            scheme: "world".into(),
            id: "anyone".into(),
        }
    }
}

/// Reads a vector of ACLs.
pub fn read_acls(r: &mut Reader<'_>) -> DecodeResult<Vec<Acl>> {
    let n = r.count("acl list", 12)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(Acl {
            perms: r.int("acl")?,
            scheme: r.string("acl scheme")?,
            id: r.string("acl id")?,
        });
    }
    Ok(out)
}

/// Writes a vector of ACLs.
pub fn write_acls(w: &mut Writer, acls: &[Acl]) {
    w.int(acls.len() as i32);
    for a in acls {
        w.int(a.perms).string(&a.scheme).string(&a.id);
    }
}
