//! Connection URLs: `native:`, `native:NAME`, `native:///path`, `zk://h1:2181,h2:2181/chroot`,
//! `etcd://h1:2379/prefix`, with `?session_timeout_ms=N`.

use crate::error::{Error, Result};
use std::time::Duration;

/// A parsed connection URL.
///
/// ```
/// use menagerie_core::url::ConnectUrl;
/// let u = ConnectUrl::parse("zk://a:2181,b:2181/app?session_timeout_ms=5000").unwrap();
/// assert_eq!(u.scheme, "zk");
/// assert_eq!(u.hosts, vec!["a:2181", "b:2181"]);
/// assert_eq!(u.path, "/app");
/// assert_eq!(u.session_timeout.unwrap().as_millis(), 5000);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectUrl {
    /// `native`, `zk` or `etcd`.
    pub scheme: String,
    /// Host:port pairs (empty for native).
    pub hosts: Vec<String>,
    /// chroot / prefix (ZooKeeper, etcd), file path (durable native), or store name (`native:NAME`).
    pub path: String,
    /// `session_timeout_ms` option.
    pub session_timeout: Option<Duration>,
    /// `connect_timeout_ms` option: how long to keep trying to open the first session.
    pub connect_timeout: Option<Duration>,
}

impl ConnectUrl {
    /// Parses a connection URL; a malformed one is a [`Error::BadArguments`].
    pub fn parse(url: &str) -> Result<ConnectUrl> {
        let bad = |why: &str| Error::BadArguments {
            reason: format!("connection URL {url:?}: {why}"),
        };
        let (scheme, rest) = url
            .split_once(':')
            .ok_or_else(|| bad("expected scheme:…, e.g. native: or zk://host:2181"))?;
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let mut session_timeout = None;
        let mut connect_timeout = None;
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("session_timeout_ms", v)) => {
                    let ms: u64 = v
                        .parse()
                        .map_err(|_| bad("session_timeout_ms must be a number of milliseconds"))?;
                    session_timeout = Some(Duration::from_millis(ms));
                }
                Some(("connect_timeout_ms", v)) => {
                    let ms: u64 = v
                        .parse()
                        .map_err(|_| bad("connect_timeout_ms must be a number of milliseconds"))?;
                    connect_timeout = Some(Duration::from_millis(ms));
                }
                _ => return Err(bad(&format!("unknown option {pair:?}"))),
            }
        }
        let (hosts, path) = match rest.strip_prefix("//") {
            Some(authority_and_path) => {
                let (auth, path) = match authority_and_path.find('/') {
                    Some(i) => (&authority_and_path[..i], &authority_and_path[i..]),
                    None => (authority_and_path, ""),
                };
                let hosts: Vec<String> = auth
                    .split(',')
                    .filter(|h| !h.is_empty())
                    .map(str::to_string)
                    .collect();
                (hosts, path.to_string())
            }
            None => (Vec::new(), rest.to_string()),
        };
        Ok(ConnectUrl {
            scheme: scheme.to_ascii_lowercase(),
            hosts,
            path,
            session_timeout,
            connect_timeout,
        })
    }
}
