//! What the servers can do: their version (from the `srvr` four-letter word) and whether TTL
//! nodes are enabled (from a harmless TTL create).

use crate::options::ServerVersion;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zookeeper_client as zk;

/// Longest a four-letter word may take.
const FOUR_LETTER_TIMEOUT: Duration = Duration::from_secs(2);

/// Splits `host:port` (`[v6]:port`, or `host` alone for port 2181).
pub(crate) fn split_host_port(hostport: &str) -> Option<(String, u16)> {
    let hostport = hostport.strip_prefix("tcp://").unwrap_or(hostport).trim();
    if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => 2181,
            None => return None,
        };
        return Some((host.to_string(), port));
    }
    match hostport.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => Some((host.to_string(), port.parse().ok()?)),
        Some(_) => None,
        None if !hostport.is_empty() => Some((hostport.to_string(), 2181)),
        None => None,
    }
}

/// Sends a four-letter word (`ruok`, `srvr`, `mntr`, …) to `hostport` and returns the answer.
///
/// ```no_run
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let answer = menagerie_zookeeper::four_letter_word("127.0.0.1:2181", "ruok").await?;
/// assert_eq!(answer, "imok");
/// # Ok::<_, std::io::Error>(()) }).unwrap();
/// ```
pub async fn four_letter_word(hostport: &str, word: &str) -> std::io::Result<String> {
    let (host, port) = split_host_port(hostport).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("not a host:port: {hostport:?}"),
        )
    })?;
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
        stream.write_all(word.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&answer).into_owned())
    };
    match tokio::time::timeout(FOUR_LETTER_TIMEOUT, exchange).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("{word} to {hostport}: no answer in {FOUR_LETTER_TIMEOUT:?}"),
        )),
    }
}

/// The version of the first of `hosts` that answers `srvr`.
pub(crate) async fn server_version(hosts: &[String]) -> Option<ServerVersion> {
    for host in hosts {
        match four_letter_word(host, "srvr").await {
            Ok(text) => match ServerVersion::parse_srvr(&text) {
                Some(v) => return Some(v),
                None => {
                    tracing::debug!(%host, answer = %text.trim(), "srvr gave no version");
                }
            },
            Err(e) => tracing::debug!(%host, error = %e, "srvr failed"),
        }
    }
    None
}

/// Whether the server accepts TTL creates. The probe creates a TTL node under a parent that does
/// not exist: a server with extended types answers NoNode (nothing is created), one without them
/// answers Unimplemented. Returns `None` when the answer says neither.
pub(crate) async fn ttl_enabled(client: &zk::Client) -> Option<bool> {
    let probe = format!(
        "/zookeeper/{}menagerie-ttl-probe/node",
        menagerie_core::client::protected_prefix()
    );
    let options = zk::CreateMode::Persistent
        .with_acls(zk::Acls::anyone_all())
        .with_ttl(Duration::from_secs(1));
    match client.create(&probe, b"", &options).await {
        Err(zk::Error::NoNode) => Some(true),
        Err(zk::Error::Unimplemented) => Some(false),
        Ok(_) => {
            // Cannot happen (the parent is missing); clean up anyway.
            let _ = client.delete(&probe, None).await;
            Some(true)
        }
        Err(e) => {
            tracing::debug!(error = %e, "TTL probe inconclusive");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ports() {
        assert_eq!(split_host_port("a:1"), Some(("a".into(), 1)));
        assert_eq!(split_host_port("a"), Some(("a".into(), 2181)));
        assert_eq!(split_host_port("[::1]:7"), Some(("::1".into(), 7)));
        assert_eq!(split_host_port("[::1]"), Some(("::1".into(), 2181)));
        assert_eq!(split_host_port(":7"), None);
        assert_eq!(split_host_port("a:x"), None);
        assert_eq!(split_host_port(""), None);
    }

    #[test]
    fn versions() {
        assert_eq!(
            ServerVersion::parse_srvr("Zookeeper version: 3.5.3-beta-xyz, built on"),
            Some(ServerVersion::new(3, 5, 3))
        );
        assert_eq!(
            ServerVersion::parse_srvr("srvr is not executed because it is not in the whitelist."),
            None
        );
    }
}
