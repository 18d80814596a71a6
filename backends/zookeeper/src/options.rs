//! [`ZkOptions`]: how a [`ZkBackend`](crate::ZkBackend) connects and what it assumes about the
//! servers, and [`ServerVersion`].

use std::fmt;
use std::time::Duration;

/// ZooKeeper's default `jute.maxbuffer`: the largest request frame a server accepts (bytes after
/// the 4-byte length prefix). A bigger frame makes the server drop the connection.
pub const DEFAULT_MAX_FRAME_LEN: usize = 0xfffff;

/// Bytes of a frame kept for the request header, the path and the ACL, so that data of
/// [`max_data_len`](crate::ZkBackend) bytes fits in one frame with any path up to about 970 bytes.
pub const FRAME_RESERVE: usize = 1024;

/// A ZooKeeper server version, as reported by the `srvr` four-letter word.
///
/// ```
/// use menagerie_zookeeper::ServerVersion;
/// let v = ServerVersion::parse_srvr("Zookeeper version: 3.8.0-abc, built on 2024-12-29\nMode: standalone").unwrap();
/// assert_eq!(v, ServerVersion::new(3, 8, 0));
/// assert!(v >= ServerVersion::new(3, 6, 0));
/// assert_eq!(v.to_string(), "3.8.0");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerVersion {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Patch version.
    pub patch: u32,
}

impl ServerVersion {
    /// A version from its three numbers.
    pub const fn new(major: u32, minor: u32, patch: u32) -> ServerVersion {
        ServerVersion {
            major,
            minor,
            patch,
        }
    }

    /// Extracts the version from the text of a `srvr` (or `stat`) answer: the line
    /// `Zookeeper version: 3.8.0-<commit>, built on …`. `None` when there is no such line.
    pub fn parse_srvr(text: &str) -> Option<ServerVersion> {
        let line = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Zookeeper version:"))?;
        let number = line
            .trim()
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .next()?;
        let mut parts = number.split('.').map(|p| p.parse::<u32>().ok());
        let major = parts.next().flatten()?;
        let minor = parts.next().flatten()?;
        let patch = parts.next().flatten().unwrap_or(0);
        Some(ServerVersion::new(major, minor, patch))
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Options of a ZooKeeper connection.
///
/// ```
/// use std::time::Duration;
/// use menagerie_zookeeper::ZkOptions;
/// let o = ZkOptions::default()
///     .with_session_timeout(Duration::from_secs(4))
///     .with_connect_timeout(Duration::from_secs(5));
/// assert_eq!(o.session_timeout, Duration::from_secs(4));
/// assert_eq!(o.max_data_len(), 1_048_575 - 1024);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZkOptions {
    /// Session timeout asked of the server (the server clamps it to its
    /// `[minSessionTimeout, maxSessionTimeout]`, by default `[2, 20]` × tickTime). Default 10 s.
    pub session_timeout: Duration,
    /// How long [`ZkBackend::connect`](crate::ZkBackend::connect) (and the re-opening of a session
    /// after an expiry) keeps trying before it gives up with ConnectionLoss. Default 15 s.
    pub connect_timeout: Duration,
    /// Upper bound on one operation; past it the operation fails with OperationTimeout (it may still
    /// be applied). Default 30 s. (A silent server is normally detected sooner: the connection is
    /// declared lost after 2/5 of the session timeout and in-flight operations fail with ConnectionLoss.)
    pub operation_timeout: Duration,
    /// The servers' `jute.maxbuffer` (largest request frame). Default 1,048,575 (ZooKeeper's default).
    pub max_frame_len: usize,
    /// The server version, when known; `None` asks the servers with the `srvr` four-letter word
    /// (and assumes a current server when they do not answer).
    pub server_version: Option<ServerVersion>,
    /// Whether TTL nodes work; `None` probes the server at connect (a TTL create under a missing
    /// parent: Unimplemented means extended types are off).
    pub ttl: Option<bool>,
}

impl Default for ZkOptions {
    fn default() -> Self {
        ZkOptions {
            session_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(15),
            operation_timeout: Duration::from_secs(30),
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            server_version: None,
            ttl: None,
        }
    }
}

impl ZkOptions {
    /// Sets [`session_timeout`](ZkOptions::session_timeout).
    pub fn with_session_timeout(mut self, timeout: Duration) -> ZkOptions {
        self.session_timeout = timeout;
        self
    }

    /// Sets [`connect_timeout`](ZkOptions::connect_timeout).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> ZkOptions {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`operation_timeout`](ZkOptions::operation_timeout).
    pub fn with_operation_timeout(mut self, timeout: Duration) -> ZkOptions {
        self.operation_timeout = timeout;
        self
    }

    /// Sets [`max_frame_len`](ZkOptions::max_frame_len) (the servers' `jute.maxbuffer`).
    pub fn with_max_frame_len(mut self, len: usize) -> ZkOptions {
        self.max_frame_len = len;
        self
    }

    /// Sets [`server_version`](ZkOptions::server_version) instead of asking the servers.
    pub fn with_server_version(mut self, version: ServerVersion) -> ZkOptions {
        self.server_version = Some(version);
        self
    }

    /// Sets [`ttl`](ZkOptions::ttl) instead of probing the server.
    pub fn with_ttl(mut self, ttl: bool) -> ZkOptions {
        self.ttl = Some(ttl);
        self
    }

    /// The largest node data this backend accepts: `max_frame_len` − [`FRAME_RESERVE`]
    /// (1,047,551 bytes with ZooKeeper's defaults).
    pub fn max_data_len(&self) -> usize {
        self.max_frame_len.saturating_sub(FRAME_RESERVE)
    }
}
