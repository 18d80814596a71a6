//! Shared support for the integration tests: real servers as child processes on free loopback
//! ports with temp dirs, readiness waits, and process control (kill, pause, restart).

pub mod curator;
pub mod etcd;
pub mod process;
pub mod proxy;
pub mod safety;
pub mod zookeeper;
