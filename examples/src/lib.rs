//! # menagerie-examples
//!
//! A small system built only from menagerie's public API, runnable as one demo (`demo` binary, the
//! README's first command) or as separate processes around one shared server (`greeter`,
//! `gateway`, `scheduler`, `worker` binaries with `--backend URL`).
//!
//! - [`services::greeter`]: serves greetings over TCP, registers in the service registry, reads its
//!   greeting from a config watch.
//! - [`services::gateway`]: routes requests to greeters with the least-connections balancer.
//! - [`services::scheduler`]: enqueues periodic jobs only while it is the elected leader, each
//!   enqueue fenced by its leadership.
//! - [`services::worker`]: waits on a double barrier for the batch to start, takes jobs with
//!   `take_with_ack`, records each in a ledger under a lock.
//! - [`demo`]: runs them all as tasks, kills and restarts some on purpose, and reports.

pub mod demo;
pub mod services;

/// Where the demo's nodes live.
pub mod layout {
    /// Service registry base.
    pub const SERVICES: &str = "/demo/services";
    /// Greeting configuration (JSON).
    pub const GREETING: &str = "/demo/config/greeting";
    /// Scheduler election.
    pub const ELECTION: &str = "/demo/scheduler";
    /// Job queue.
    pub const JOBS: &str = "/demo/jobs";
    /// Ledger: one node per processed job.
    pub const LEDGER: &str = "/demo/ledger";
    /// Lock guarding the ledger.
    pub const LEDGER_LOCK: &str = "/demo/locks/ledger";
    /// Workers' start barrier.
    pub const BATCH: &str = "/demo/batch";
    /// Connection counts of the balancer.
    pub const CONNECTIONS: &str = "/demo/connections";
}

/// Prints one narration line: `[who] what`.
pub fn say(who: &str, what: impl AsRef<str>) {
    println!("[{who:>11}] {}", what.as_ref());
}

/// Parses `--backend URL` from the arguments (default `native:`).
pub fn backend_arg() -> String {
    arg("--backend").unwrap_or_else(|| "native:".to_string())
}

/// The value after `flag` in the arguments.
pub fn arg(flag: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .cloned()
}
