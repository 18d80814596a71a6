//! `menagerie-server`: the native tree served over ZooKeeper's client protocol.
//!
//! ```text
//! menagerie-server --listen 127.0.0.1:2181 (--data-dir DIR | --in-memory)
//!                  [--tick-time MS] [--min-session-timeout MS] [--max-session-timeout MS]
//!                  [--fsync always|never] [--snapshot-every N] [--log-level LEVEL]
//! ```
//!
//! Stops gracefully on SIGTERM or Ctrl-C (exit status 0); exits 1 on bad arguments, 2 when it
//! cannot start (port in use, data directory locked or unreadable).

use menagerie_native::durable::FsyncPolicy;
use menagerie_native::server::{Server, ServerConfig, Storage};
use std::process::ExitCode;

const USAGE: &str = "usage: menagerie-server --listen ADDR:PORT (--data-dir DIR | --in-memory)
       [--tick-time MS] [--min-session-timeout MS] [--max-session-timeout MS]
       [--fsync always|never] [--snapshot-every N] [--log-level error|warn|info|debug|trace]

Serves an in-memory or durable ZooKeeper-compatible tree to ZooKeeper clients (protocol of
ZooKeeper 3.4-3.9). Four-letter words: ruok srvr stat mntr conf envi cons wchs dump isro.";

struct Args {
    config: ServerConfig,
    log_level: tracing::Level,
}

fn parse(args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut config = ServerConfig::default();
    let mut storage: Option<Storage> = None;
    let mut listen_given = false;
    let mut log_level = tracing::Level::INFO;
    let mut it = args;
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        let number = |name: &str, v: String| -> Result<u32, String> {
            v.parse::<u32>()
                .map_err(|_| format!("{name} must be a number of milliseconds, not {v:?}"))
        };
        match flag.as_str() {
            "--listen" => {
                let v = value("--listen")?;
                config.listen = v
                    .parse()
                    .map_err(|_| format!("--listen must be ADDR:PORT, not {v:?}"))?;
                listen_given = true;
            }
            "--data-dir" => {
                if storage.is_some() {
                    return Err("give one of --data-dir and --in-memory".into());
                }
                storage = Some(Storage::Directory(value("--data-dir")?.into()));
            }
            "--in-memory" => {
                if storage.is_some() {
                    return Err("give one of --data-dir and --in-memory".into());
                }
                storage = Some(Storage::InMemory);
            }
            "--tick-time" => config.tick_time_ms = number("--tick-time", value("--tick-time")?)?,
            "--min-session-timeout" => {
                config.min_session_timeout = Some(number(
                    "--min-session-timeout",
                    value("--min-session-timeout")?,
                )?)
            }
            "--max-session-timeout" => {
                config.max_session_timeout = Some(number(
                    "--max-session-timeout",
                    value("--max-session-timeout")?,
                )?)
            }
            "--fsync" => config.fsync = value("--fsync")?.parse::<FsyncPolicy>()?,
            "--snapshot-every" => {
                let v = value("--snapshot-every")?;
                config.snapshot_every =
                    v.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                        format!("--snapshot-every must be a positive number, not {v:?}")
                    })?;
            }
            "--log-level" => {
                let v = value("--log-level")?;
                log_level = v
                    .parse()
                    .map_err(|_| format!("--log-level: unknown level {v:?}"))?;
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if !listen_given {
        return Err("--listen is required".into());
    }
    if config.tick_time_ms == 0 {
        return Err("--tick-time must be positive".into());
    }
    config.storage = storage.ok_or("give --data-dir DIR or --in-memory")?;
    Ok(Args { config, log_level })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("menagerie-server: {e}\n\n{USAGE}");
            return ExitCode::from(1);
        }
    };
    tracing_subscriber::fmt()
        .with_max_level(args.log_level)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("menagerie-server")
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("menagerie-server: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async move {
        let server = match Server::start(args.config).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                eprintln!("menagerie-server: cannot start: {e}");
                return ExitCode::from(2);
            }
        };
        shutdown_signal().await;
        tracing::info!("shutdown requested");
        server.shutdown().await;
        ExitCode::SUCCESS
    })
}
