//! Mapping etcd-client errors onto menagerie's typed errors.

use menagerie_core::Error;

/// gRPC status codes the mapping looks at.
const CANCELLED: i32 = 1;
const UNKNOWN: i32 = 2;
const INVALID_ARGUMENT: i32 = 3;
const DEADLINE_EXCEEDED: i32 = 4;
const NOT_FOUND: i32 = 5;
const RESOURCE_EXHAUSTED: i32 = 8;
const ABORTED: i32 = 10;
const UNAVAILABLE: i32 = 14;

/// True when etcd says the lease (the session) does not exist any more.
pub(crate) fn is_lease_gone(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(s) => {
            i32::from(s.code()) == NOT_FOUND && s.message().contains("lease not found")
        }
        etcd_client::Error::LeaseKeepAliveError(m) => m.contains("lease not found"),
        _ => false,
    }
}

/// The menagerie error for an etcd-client error.
///
/// Transport failures and an unavailable cluster (no leader, leader changed) are
/// `ConnectionLoss`, deadlines are `OperationTimeout` — both retryable, the operation may or may
/// not have been applied. A missing lease is `SessionExpired`.
pub(crate) fn map(e: etcd_client::Error) -> Error {
    match &e {
        etcd_client::Error::GRpcStatus(s) => {
            let code = i32::from(s.code());
            let msg = s.message();
            match code {
                _ if is_lease_gone(&e) => Error::SessionExpired,
                DEADLINE_EXCEEDED => Error::OperationTimeout,
                CANCELLED if msg.to_ascii_lowercase().contains("timeout") => {
                    Error::OperationTimeout
                }
                UNAVAILABLE | CANCELLED | ABORTED => Error::ConnectionLoss,
                UNKNOWN if msg.contains("transport") || msg.contains("connection") => {
                    Error::ConnectionLoss
                }
                INVALID_ARGUMENT | RESOURCE_EXHAUSTED => Error::BadArguments {
                    reason: format!("etcd refused the request: {msg}"),
                },
                _ => Error::Backend {
                    message: format!("etcd: {msg} (gRPC code {code})"),
                },
            }
        }
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => {
            Error::ConnectionLoss
        }
        etcd_client::Error::WatchError(_) | etcd_client::Error::LeaseKeepAliveError(_) => {
            if is_lease_gone(&e) {
                Error::SessionExpired
            } else {
                Error::ConnectionLoss
            }
        }
        other => Error::Backend {
            message: format!("etcd client: {other}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_errors_are_retryable() {
        let e = map(etcd_client::Error::WatchError("stream closed".into()));
        assert!(e.is_retryable());
        let e = map(etcd_client::Error::LeaseKeepAliveError(
            "lease not found".into(),
        ));
        assert_eq!(e, Error::SessionExpired);
        let e = map(etcd_client::Error::InvalidArgs("x".into()));
        assert_eq!(e.kind(), menagerie_core::ErrorKind::Backend);
    }
}
