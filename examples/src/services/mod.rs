//! The services of the example system. Each takes its own [`Client`] (its own session, as a
//! separate process would have) and reports what it does on an [`Events`] channel.

use crate::layout::*;
use crate::say;
use menagerie::recipes::{
    BalancerOptions, ConfigWatch, DoubleBarrier, LeaderEvent, LeaderLatch, LeastConnections, Mutex,
    Queue, ServiceDiscovery, ServiceInstance, ServiceRegistry,
};
use menagerie::{Client, CreateMode, Error, Op, Result};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// What the services report (the demo's summary and tests are built from these).
#[derive(Debug, Clone)]
pub enum Event {
    /// A greeter now greets with this text.
    GreetingSeen {
        /// The greeter.
        greeter: String,
        /// The greeting.
        text: String,
    },
    /// A greeter served a request.
    Served {
        /// The greeter.
        greeter: String,
    },
    /// A scheduler became leader.
    Elected {
        /// The scheduler.
        scheduler: String,
        /// The term's fencing token.
        token: i64,
    },
    /// A scheduler stepped down.
    SteppedDown {
        /// The scheduler.
        scheduler: String,
    },
    /// A job entered the queue (fenced by the leader's term).
    JobPut {
        /// Queue item id (its sequence orders jobs as the server committed them).
        item: String,
        /// The job.
        job: String,
        /// Token of the term that put it.
        token: i64,
    },
    /// A job is about to be enqueued: until its `JobPut`, its outcome is unknown (the scheduler
    /// may die or lose its connection after sending).
    JobPutUncertain {
        /// The job.
        job: String,
    },
    /// A job was recorded in the ledger (exactly once per job).
    JobDone {
        /// The worker.
        worker: String,
        /// The job.
        job: String,
    },
    /// A redelivered job was found already in the ledger, and only acknowledged.
    JobAlreadyDone {
        /// The worker.
        worker: String,
        /// The job.
        job: String,
    },
}

/// Where services send their [`Event`]s.
pub type Events = mpsc::UnboundedSender<Event>;

/// A running service: its client (session) and its tasks.
#[derive(Debug)]
pub struct Running {
    /// The service's name.
    pub name: String,
    /// Its client.
    pub client: Client,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Kills the service the way a crash would: tasks stop, the session closes, its ephemeral
    /// nodes (registration, lock and latch nodes, claims) vanish.
    pub async fn kill(self) {
        for t in &self.tasks {
            t.abort();
        }
        let _ = self.client.close().await;
    }
}

/// The greeting configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Greeting {
    /// The text, e.g. "Hello".
    pub text: String,
}

/// Starts a greeter: a TCP server on a free loopback port answering `name\n` with
/// `<greeting>, <name>! (<greeter>)\n`, registered as an instance of `greeter`, greeting from the
/// config watch.
pub async fn greeter(client: Client, name: &str, events: Events) -> Result<Running> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Error::Backend {
            message: e.to_string(),
        })?;
    let port = listener
        .local_addr()
        .map_err(|e| Error::Backend {
            message: e.to_string(),
        })?
        .port();
    let config = Arc::new(
        ConfigWatch::json(
            &client,
            GREETING,
            Greeting {
                text: "Hello".into(),
            },
        )
        .await?,
    );
    let registry = ServiceRegistry::new(&client, SERVICES);
    registry
        .register(ServiceInstance::new("greeter", name, "127.0.0.1", port))
        .await?;
    say(
        name,
        format!(
            "listening on 127.0.0.1:{port}, registered, greeting {:?}",
            config.current().value.text
        ),
    );
    let _ = events.send(Event::GreetingSeen {
        greeter: name.into(),
        text: config.current().value.text.clone(),
    });
    let mut changes = config.changes();
    let (me, ev) = (name.to_string(), events.clone());
    let follow = tokio::spawn(async move {
        while let Some(v) = changes.next().await {
            say(
                &me,
                format!("config changed: greeting is now {:?}", v.value.text),
            );
            let _ = ev.send(Event::GreetingSeen {
                greeter: me.clone(),
                text: v.value.text.clone(),
            });
        }
    });
    let (me, ev) = (name.to_string(), events);
    let serve = tokio::spawn(async move {
        let _registry = registry; // keeps the registration (and re-registration) alive
        while let Ok((stream, _)) = listener.accept().await {
            let (config, me, ev) = (config.clone(), me.clone(), ev.clone());
            tokio::spawn(async move {
                let (r, mut w) = stream.into_split();
                let mut line = String::new();
                if BufReader::new(r).read_line(&mut line).await.is_ok() {
                    tokio::time::sleep(Duration::from_millis(5)).await; // the "work"
                    let reply =
                        format!("{}, {}! ({me})\n", config.current().value.text, line.trim());
                    let _ = w.write_all(reply.as_bytes()).await;
                    let _ = ev.send(Event::Served { greeter: me });
                }
            });
        }
    });
    Ok(Running {
        name: name.into(),
        client,
        tasks: vec![follow, serve],
    })
}

/// The gateway: discovers greeters and sends each request to the least-loaded one.
#[derive(Debug)]
pub struct Gateway {
    balancer: LeastConnections,
    /// The gateway's client.
    pub client: Client,
}

impl Gateway {
    /// Starts a gateway.
    pub async fn start(client: Client) -> Result<Gateway> {
        let cache = ServiceDiscovery::new(&client, SERVICES)
            .cache("greeter")
            .await?;
        let options = BalancerOptions {
            counts_path: CONNECTIONS.into(),
            ..BalancerOptions::default()
        };
        let balancer = LeastConnections::start(&client, cache, options).await?;
        Ok(Gateway { balancer, client })
    }

    /// Sends one request; returns which greeter served it and the reply. A greeter that died
    /// since the last discovery update is retried on another.
    pub async fn request(&self, who: &str) -> Result<(String, String)> {
        let mut last = None;
        for _ in 0..5 {
            let guard = self.balancer.pick()?;
            let instance = guard.instance().clone();
            let addr = format!(
                "{}:{}",
                instance.address.clone().unwrap_or_default(),
                instance.port.unwrap_or(0)
            );
            match call(&addr, who).await {
                Ok(reply) => return Ok((instance.id, reply)),
                Err(e) => {
                    last = Some(e);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        Err(Error::Backend {
            message: format!("no greeter answered: {last:?}"),
        })
    }
}

async fn call(addr: &str, who: &str) -> std::io::Result<String> {
    let stream = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await??;
    let (r, mut w) = stream.into_split();
    w.write_all(format!("{who}\n").as_bytes()).await?;
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(2),
        BufReader::new(r).read_line(&mut line),
    )
    .await??;
    if line.is_empty() {
        return Err(std::io::Error::other("connection closed"));
    }
    Ok(line.trim().to_string())
}

/// Starts a scheduler: joins the election; while leader, puts a job every `every`, each put fenced
/// by the term (a deposed leader cannot enqueue). Stops putting once `budget` reaches zero.
pub async fn scheduler(
    client: Client,
    name: &str,
    every: Duration,
    budget: Arc<AtomicU64>,
    events: Events,
) -> Result<Running> {
    let latch = LeaderLatch::new(&client, ELECTION, name).start().await?;
    let queue_item = format!("{JOBS}/{}", menagerie::recipes::ITEM_PREFIX);
    client.ensure_path(JOBS).await?;
    let (me, c) = (name.to_string(), client.clone());
    let task = tokio::spawn(async move {
        let mut changes = latch.events();
        let mut n = 0u64;
        while let Some(ev) = changes.next().await {
            let LeaderEvent::Elected(term) = ev else {
                if let LeaderEvent::Revoked(reason) = ev {
                    say(&me, format!("stepped down ({reason})"));
                    let _ = events.send(Event::SteppedDown {
                        scheduler: me.clone(),
                    });
                }
                continue;
            };
            say(
                &me,
                format!("elected leader with fencing token {}", term.token()),
            );
            let _ = events.send(Event::Elected {
                scheduler: me.clone(),
                token: term.token(),
            });
            while term.is_held() {
                if budget
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1))
                    .is_err()
                {
                    break;
                }
                n += 1;
                let job = format!("{me}-job-{n}");
                // From here on the job may reach the queue even if this scheduler dies.
                let _ = events.send(Event::JobPutUncertain { job: job.clone() });
                let op = Op::create(
                    queue_item.clone(),
                    job.clone().into_bytes(),
                    CreateMode::PersistentSequential,
                );
                match term.fenced(&[op]).await {
                    Ok(results) => {
                        if let Some(menagerie::OpResult::Create { path, .. }) = results.first() {
                            let item = menagerie::path::basename(path).to_string();
                            let _ = events.send(Event::JobPut {
                                item,
                                job,
                                token: term.token(),
                            });
                        }
                    }
                    Err(e) => {
                        say(&me, format!("could not enqueue {job}: {e}"));
                        if !(e.is_retryable() || e.is_session_gone()) {
                            budget.fetch_add(1, Ordering::SeqCst); // refused: not in the queue
                        }
                        break;
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = term.lost() => break,
                }
            }
        }
        drop(latch);
        let _ = c;
    });
    Ok(Running {
        name: name.into(),
        client,
        tasks: vec![task],
    })
}

/// Starts a worker: enters the batch barrier (`batch_size` workers), then takes jobs with
/// `take_with_ack`; each job is recorded once in the ledger under the ledger lock (a fenced write),
/// then acknowledged.
pub async fn worker(
    client: Client,
    name: &str,
    batch_size: usize,
    events: Events,
) -> Result<Running> {
    let me = name.to_string();
    let c = client.clone();
    let task = tokio::spawn(async move {
        if let Err(e) = run_worker(&c, &me, batch_size, &events).await {
            say(&me, format!("stopped: {e}"));
        }
    });
    Ok(Running {
        name: name.into(),
        client,
        tasks: vec![task],
    })
}

async fn run_worker(client: &Client, me: &str, batch_size: usize, events: &Events) -> Result<()> {
    let barrier = DoubleBarrier::new(client, BATCH, batch_size, me);
    say(me, "ready; waiting for the batch to start");
    barrier.enter().await?;
    say(me, "batch started");
    client.ensure_path(LEDGER).await?;
    let queue = Queue::new(client, JOBS)
        .with_consumer_id(me)
        .with_visibility_timeout(Duration::from_secs(10));
    let lock = Mutex::new(client, LEDGER_LOCK).with_data(me.as_bytes().to_vec());
    loop {
        let delivery = match queue
            .take_with_ack_timeout(Duration::from_millis(500))
            .await
        {
            Ok(d) => d,
            Err(Error::Timeout) => continue,
            Err(e) if e.is_session_gone() => return Err(e),
            Err(e) => {
                say(me, format!("take failed: {e}"));
                continue;
            }
        };
        let job = String::from_utf8_lossy(&delivery.item().data).into_owned();
        tokio::time::sleep(Duration::from_millis(15)).await; // the "work"
        let guard = lock.acquire().await?;
        let (total, stat) = client.get(LEDGER).await?;
        let total: u64 = String::from_utf8_lossy(&total).parse().unwrap_or(0);
        let ops = [
            Op::create(
                format!("{LEDGER}/{job}"),
                me.as_bytes().to_vec(),
                CreateMode::Persistent,
            ),
            Op::set(
                LEDGER,
                (total + 1).to_string().into_bytes(),
                Some(stat.version),
            ),
        ];
        match guard.fenced(&ops).await {
            Ok(_) => {
                if delivery.attempt() > 1 {
                    say(
                        me,
                        format!(
                            "{job} (delivery #{}) recorded, token {}",
                            delivery.attempt(),
                            guard.token()
                        ),
                    );
                }
                let _ = events.send(Event::JobDone {
                    worker: me.into(),
                    job: job.clone(),
                });
            }
            Err(Error::MultiFailed { index: 0, .. }) => {
                say(
                    me,
                    format!(
                        "{job} was redelivered but is already in the ledger: acknowledging only"
                    ),
                );
                let _ = events.send(Event::JobAlreadyDone {
                    worker: me.into(),
                    job: job.clone(),
                });
            }
            Err(e) => {
                say(
                    me,
                    format!("{job}: ledger write failed ({e}); it will be redelivered"),
                );
                drop(guard);
                continue;
            }
        }
        guard.release().await?;
        if let Err(e) = delivery.ack().await {
            say(me, format!("{job}: ack failed ({e})"));
        }
    }
}

/// Counts the jobs recorded in the ledger.
pub async fn ledger(client: &Client) -> Result<Vec<String>> {
    match client.children(LEDGER).await {
        Ok((k, _)) => Ok(k),
        Err(Error::NoNode { .. }) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// A job budget shared by the schedulers.
pub fn budget(jobs: u64) -> Arc<AtomicU64> {
    Arc::new(AtomicU64::new(jobs))
}
