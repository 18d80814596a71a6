//! Helpers shared by the server tests: in-process servers on free loopback ports and a raw
//! frame-level client for what real clients never send.
#![allow(dead_code)]

use menagerie_native::server::codec::{Reader, Writer};
use menagerie_native::server::{Server, ServerConfig, ServerHandle, Storage};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// xorshift64*: a seeded stream, so a failing run is reproduced from its printed seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Every wait in these tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(20);

pub fn config(storage: Storage) -> ServerConfig {
    ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        storage,
        tick_time_ms: 100,
        min_session_timeout: Some(200),
        max_session_timeout: Some(30_000),
        ..ServerConfig::default()
    }
}

pub async fn start_in_memory() -> ServerHandle {
    Server::start(config(Storage::InMemory))
        .await
        .expect("start server")
}

pub async fn start_durable(dir: &Path) -> ServerHandle {
    Server::start(config(Storage::Directory(dir.to_path_buf())))
        .await
        .expect("start durable server")
}

pub async fn zk(server: &ServerHandle) -> zookeeper_client::Client {
    zk_at(&server.local_addr().to_string()).await
}

pub async fn zk_at(addr: &str) -> zookeeper_client::Client {
    tokio::time::timeout(
        WAIT,
        zookeeper_client::Client::connector()
            .with_session_timeout(Duration::from_secs(10))
            .connect(addr),
    )
    .await
    .expect("connect in time")
    .expect("connect")
}

/// A raw protocol client.
pub struct Raw {
    pub stream: TcpStream,
}

pub struct ConnectReply {
    pub timeout: i32,
    pub session: i64,
    pub passwd: Vec<u8>,
    pub len: usize,
}

impl Raw {
    pub async fn open(addr: std::net::SocketAddr) -> Raw {
        Raw {
            stream: TcpStream::connect(addr).await.expect("connect"),
        }
    }

    pub async fn send(&mut self, payload: &[u8]) {
        let mut f = (payload.len() as i32).to_be_bytes().to_vec();
        f.extend_from_slice(payload);
        self.stream.write_all(&f).await.expect("send");
    }

    /// The next frame, or None when the server closed the connection.
    pub async fn recv(&mut self) -> Option<Vec<u8>> {
        let mut len = [0u8; 4];
        match tokio::time::timeout(WAIT, self.stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return None,
            Err(_) => panic!("no frame and no close within {WAIT:?}"),
        }
        let n = i32::from_be_bytes(len);
        assert!((0..=1 << 20).contains(&n), "bad reply length {n}");
        let mut buf = vec![0u8; n as usize];
        tokio::time::timeout(WAIT, self.stream.read_exact(&mut buf))
            .await
            .expect("frame in time")
            .expect("frame");
        Some(buf)
    }

    /// True when the server closes the connection (within WAIT) without sending more.
    pub async fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(
            tokio::time::timeout(WAIT, self.stream.read(&mut b)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    pub async fn connect(
        &mut self,
        timeout: i32,
        session: i64,
        passwd: &[u8],
        last_zxid: i64,
        read_only: Option<bool>,
    ) -> Option<ConnectReply> {
        let mut w = Writer::new();
        w.int(0)
            .long(last_zxid)
            .int(timeout)
            .long(session)
            .buffer(passwd);
        if let Some(ro) = read_only {
            w.boolean(ro);
        }
        self.send(&w.into_bytes()).await;
        let f = self.recv().await?;
        let mut r = Reader::new(&f);
        let _v = r.int("v").unwrap();
        let timeout = r.int("t").unwrap();
        let session = r.long("s").unwrap();
        let passwd = r.buffer("p").unwrap().to_vec();
        Some(ConnectReply {
            timeout,
            session,
            passwd,
            len: f.len(),
        })
    }

    /// Sends a request; returns (xid, zxid, err, body) of the next non-notification reply.
    pub async fn call(
        &mut self,
        xid: i32,
        op: i32,
        body: &[u8],
    ) -> Option<(i32, i64, i32, Vec<u8>)> {
        let mut w = Writer::new();
        w.int(xid).int(op).raw(body);
        self.send(&w.into_bytes()).await;
        loop {
            let f = self.recv().await?;
            let mut r = Reader::new(&f);
            let x = r.int("xid").unwrap();
            let z = r.long("zxid").unwrap();
            let e = r.int("err").unwrap();
            if x == -1 {
                continue;
            }
            return Some((x, z, e, r.rest().to_vec()));
        }
    }
}

/// Sends a four-letter word and returns the answer.
pub async fn four_letter(addr: std::net::SocketAddr, word: &str) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(word.as_bytes()).await.expect("send");
    let mut out = String::new();
    tokio::time::timeout(WAIT, s.read_to_string(&mut out))
        .await
        .expect("answer in time")
        .expect("read");
    out
}

/// Polls `f` until true, at most WAIT.
pub async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !f().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
