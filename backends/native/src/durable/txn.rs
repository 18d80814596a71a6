//! Binary form of a [`Txn`] in the transaction log.

use crate::server::codec::{DecodeError, DecodeResult, Reader, Writer};
use crate::tree::{Txn, TxnBody};
use menagerie_core::{CreateMode, Op};
use std::time::Duration;

fn write_version(w: &mut Writer, v: Option<i32>) {
    w.int(v.unwrap_or(-1));
}

fn read_version(r: &mut Reader<'_>) -> DecodeResult<Option<i32>> {
    let v = r.int("version")?;
    Ok(if v == -1 { None } else { Some(v) })
}

fn write_op(w: &mut Writer, op: &Op) {
    match op {
        Op::Create { path, data, mode } => {
            let ttl = mode.ttl().map(|t| t.as_millis() as i64).unwrap_or(0);
            w.byte(1)
                .string(path)
                .buffer(data)
                .int(mode.flag())
                .long(ttl);
        }
        Op::SetData {
            path,
            data,
            version,
        } => {
            w.byte(2).string(path).buffer(data);
            write_version(w, *version);
        }
        Op::Delete { path, version } => {
            w.byte(3).string(path);
            write_version(w, *version);
        }
        Op::Check { path, version } => {
            w.byte(4).string(path);
            write_version(w, *version);
        }
    }
}

/// The create mode for a wire flag (and TTL in ms for the TTL modes).
pub(crate) fn mode_from_flag(flag: i32, ttl_ms: i64) -> Option<CreateMode> {
    let ttl = Duration::from_millis(ttl_ms.max(0) as u64);
    Some(match flag {
        0 => CreateMode::Persistent,
        1 => CreateMode::Ephemeral,
        2 => CreateMode::PersistentSequential,
        3 => CreateMode::EphemeralSequential,
        4 => CreateMode::Container,
        5 => CreateMode::PersistentWithTtl(ttl),
        6 => CreateMode::PersistentSequentialWithTtl(ttl),
        _ => return None,
    })
}

fn read_op(r: &mut Reader<'_>) -> DecodeResult<Op> {
    let kind = r.byte("op kind")?;
    Ok(match kind {
        1 => {
            let path = r.string("create path")?;
            let data = r.buffer("create data")?.to_vec();
            let flag = r.int("create mode")?;
            let ttl = r.long("create ttl")?;
            let mode = mode_from_flag(flag, ttl).ok_or(DecodeError {
                what: "create mode",
                why: "unknown flag",
            })?;
            Op::Create { path, data, mode }
        }
        2 => Op::SetData {
            path: r.string("set path")?,
            data: r.buffer("set data")?.to_vec(),
            version: read_version(r)?,
        },
        3 => Op::Delete {
            path: r.string("delete path")?,
            version: read_version(r)?,
        },
        4 => Op::Check {
            path: r.string("check path")?,
            version: read_version(r)?,
        },
        _ => {
            return Err(DecodeError {
                what: "op kind",
                why: "unknown",
            })
        }
    })
}

/// Serialises a transaction.
///
/// ```
/// use menagerie_core::{CreateMode, Op};
/// use menagerie_native::durable::{decode_txn, encode_txn};
/// use menagerie_native::tree::{Txn, TxnBody};
/// let t = Txn { zxid: 5, time: 9, body: TxnBody::Op { session: 1, op: Op::create("/a", b"x".to_vec(), CreateMode::Persistent) } };
/// assert_eq!(decode_txn(&encode_txn(&t)).unwrap(), t);
/// ```
pub fn encode_txn(t: &Txn) -> Vec<u8> {
    let mut w = Writer::new();
    w.long(t.zxid).long(t.time);
    match &t.body {
        TxnBody::Op { session, op } => {
            w.byte(1).long(*session);
            write_op(&mut w, op);
        }
        TxnBody::Multi { session, ops } => {
            w.byte(2).long(*session).int(ops.len() as i32);
            for op in ops {
                write_op(&mut w, op);
            }
        }
        TxnBody::CreateSession {
            session,
            timeout_ms,
        } => {
            w.byte(3).long(*session).int(*timeout_ms);
        }
        TxnBody::CloseSession { session } => {
            w.byte(4).long(*session);
        }
        TxnBody::Reap { path } => {
            w.byte(5).string(path);
        }
        TxnBody::SetAcl {
            session,
            path,
            version,
        } => {
            w.byte(6).long(*session).string(path).int(*version);
        }
    }
    w.into_bytes()
}

/// Reads a transaction written by [`encode_txn`]; malformed bytes are an error, never a panic.
///
/// ```
/// assert!(menagerie_native::durable::decode_txn(&[1, 2, 3]).is_err());
/// ```
pub fn decode_txn(buf: &[u8]) -> DecodeResult<Txn> {
    let mut r = Reader::new(buf);
    let zxid = r.long("txn zxid")?;
    let time = r.long("txn time")?;
    let body = match r.byte("txn kind")? {
        1 => TxnBody::Op {
            session: r.long("txn session")?,
            op: read_op(&mut r)?,
        },
        2 => {
            let session = r.long("txn session")?;
            let n = r.count("multi ops", 1)?;
            let mut ops = Vec::with_capacity(n);
            for _ in 0..n {
                ops.push(read_op(&mut r)?);
            }
            TxnBody::Multi { session, ops }
        }
        3 => TxnBody::CreateSession {
            session: r.long("txn session")?,
            timeout_ms: r.int("txn timeout")?,
        },
        4 => TxnBody::CloseSession {
            session: r.long("txn session")?,
        },
        5 => TxnBody::Reap {
            path: r.string("reap path")?,
        },
        6 => TxnBody::SetAcl {
            session: r.long("txn session")?,
            path: r.string("setAcl path")?,
            version: r.int("setAcl version")?,
        },
        _ => {
            return Err(DecodeError {
                what: "txn kind",
                why: "unknown",
            })
        }
    };
    if !r.is_empty() {
        return Err(DecodeError {
            what: "txn",
            why: "trailing bytes",
        });
    }
    Ok(Txn { zxid, time, body })
}
