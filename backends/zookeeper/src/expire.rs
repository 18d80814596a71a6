//! Forcing a session to end on the server — ZooKeeper's classic test trick: a second connection
//! attaches to the session (its id and password) and closes it.
//!
//! zookeeper-client keeps the session password to itself, so it is captured from the connect
//! request the crate sends when asked to re-attach to the session — sent to a loopback listener
//! of ours, never to a server. The takeover itself is a raw connection that sends the connect
//! request and `closeSession` in one write: the server handles both before the handle's own
//! client can re-attach (a slower takeover loses that race again and again, since the server hands
//! the session to whichever connection attached last).

use crate::probe::split_host_port;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use zookeeper_client as zk;

/// `closeSession`'s opcode.
const CLOSE_SESSION: i32 = -11;
/// Largest frame we read back (a connect reply or a close reply is tiny).
const MAX_REPLY: usize = 64 * 1024;

fn io(kind: std::io::ErrorKind, msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(kind, msg.into())
}

/// The session id and password of `info`, as zookeeper-client would send them.
pub(crate) async fn capture_credentials(
    info: zk::SessionInfo,
    deadline: Instant,
) -> std::io::Result<(i64, Vec<u8>)> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?.to_string();
    let connect = zk::Client::connector()
        .with_session(info)
        .with_session_timeout(Duration::from_secs(30))
        .with_fail_eagerly()
        .connect(&addr);
    let accept = async {
        let (mut stream, _) = listener.accept().await?;
        read_frame(&mut stream).await
    };
    let frame = tokio::select! {
        r = tokio::time::timeout_at(deadline, accept) => match r {
            Ok(r) => r?,
            Err(_) => return Err(io(std::io::ErrorKind::TimedOut, "no connect request to capture")),
        },
        r = connect => {
            return Err(io(
                std::io::ErrorKind::Other,
                format!("zookeeper-client ended before sending its connect request: {:?}", r.err()),
            ));
        }
    };
    parse_connect_request(&frame)
}

async fn read_frame(stream: &mut tokio::net::TcpStream) -> std::io::Result<Vec<u8>> {
    let len = stream.read_i32().await?;
    let len = usize::try_from(len)
        .ok()
        .filter(|l| *l <= MAX_REPLY)
        .ok_or_else(|| {
            io(
                std::io::ErrorKind::InvalidData,
                format!("bad frame length {len}"),
            )
        })?;
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    Ok(body)
}

/// ConnectRequest{int protocolVersion, long lastZxidSeen, int timeOut, long sessionId,
/// buffer passwd, bool readOnly}.
fn parse_connect_request(body: &[u8]) -> std::io::Result<(i64, Vec<u8>)> {
    let bad = || io(std::io::ErrorKind::InvalidData, "malformed connect request");
    let session = body.get(16..24).ok_or_else(bad)?;
    let session = i64::from_be_bytes(session.try_into().map_err(|_| bad())?);
    let len = body.get(24..28).ok_or_else(bad)?;
    let len = i32::from_be_bytes(len.try_into().map_err(|_| bad())?);
    let len = usize::try_from(len).map_err(|_| bad())?;
    let password = body.get(28..28 + len).ok_or_else(bad)?.to_vec();
    if session == 0 || password.is_empty() {
        return Err(bad());
    }
    Ok((session, password))
}

/// What the takeover achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Takeover {
    /// The server closed the session at our request.
    Closed,
    /// The server no longer knew the session.
    AlreadyGone,
}

/// Attaches to the session on `hostport` and closes it, in one write.
pub(crate) async fn close_session(
    hostport: &str,
    session: i64,
    password: &[u8],
    timeout_ms: i32,
) -> std::io::Result<Takeover> {
    let (host, port) = split_host_port(hostport).ok_or_else(|| {
        io(
            std::io::ErrorKind::InvalidInput,
            format!("bad host {hostport}"),
        )
    })?;
    let mut stream = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
    let mut out = Vec::with_capacity(96);
    let connect_len = 4 + 8 + 4 + 8 + 4 + password.len() + 1;
    out.extend_from_slice(&(connect_len as i32).to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes()); // protocol version
    out.extend_from_slice(&0i64.to_be_bytes()); // last zxid seen
    out.extend_from_slice(&timeout_ms.to_be_bytes());
    out.extend_from_slice(&session.to_be_bytes());
    out.extend_from_slice(&(password.len() as i32).to_be_bytes());
    out.extend_from_slice(password);
    out.push(0); // not read-only
    out.extend_from_slice(&8i32.to_be_bytes());
    out.extend_from_slice(&1i32.to_be_bytes()); // xid
    out.extend_from_slice(&CLOSE_SESSION.to_be_bytes());
    stream.write_all(&out).await?;
    // ConnectResponse{int protocolVersion, int timeOut, long sessionId, buffer passwd, …}
    let reply = read_frame(&mut stream).await?;
    let granted = reply
        .get(8..16)
        .and_then(|b| b.try_into().ok())
        .map(i64::from_be_bytes)
        .ok_or_else(|| io(std::io::ErrorKind::InvalidData, "short connect reply"))?;
    if granted == 0 {
        return Ok(Takeover::AlreadyGone);
    }
    loop {
        // ReplyHeader{int xid, long zxid, int err}
        let frame = read_frame(&mut stream).await?;
        let xid = frame
            .get(0..4)
            .and_then(|b| b.try_into().ok())
            .map(i32::from_be_bytes)
            .ok_or_else(|| io(std::io::ErrorKind::InvalidData, "short reply"))?;
        if xid != 1 {
            continue; // a notification or ping
        }
        let err = frame
            .get(12..16)
            .and_then(|b| b.try_into().ok())
            .map(i32::from_be_bytes)
            .ok_or_else(|| io(std::io::ErrorKind::InvalidData, "short reply"))?;
        return match err {
            0 => Ok(Takeover::Closed),
            -112 => Ok(Takeover::AlreadyGone),
            e => Err(io(
                std::io::ErrorKind::Other,
                format!("closeSession answered error {e}"),
            )),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_request_layout() {
        let mut body = Vec::new();
        body.extend_from_slice(&0i32.to_be_bytes());
        body.extend_from_slice(&5i64.to_be_bytes());
        body.extend_from_slice(&4000i32.to_be_bytes());
        body.extend_from_slice(&0x1234i64.to_be_bytes());
        body.extend_from_slice(&3i32.to_be_bytes());
        body.extend_from_slice(b"pwd");
        body.push(0);
        assert_eq!(
            parse_connect_request(&body).unwrap(),
            (0x1234, b"pwd".to_vec())
        );
        assert!(parse_connect_request(&body[..20]).is_err());
    }
}
