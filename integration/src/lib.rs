//! Shared support for the integration tests (servers as child processes, fault injection).
