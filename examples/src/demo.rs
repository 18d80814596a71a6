//! The whole system as tasks in one process, with faults injected on purpose, and a report.

use crate::layout::*;
use crate::say;
use crate::services::{self, Event, Gateway, Greeting};
use menagerie::recipes::ConfigWatch;
use menagerie::{connect, Client, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What the demo observed.
#[derive(Debug, Default)]
pub struct Report {
    /// Jobs the schedulers enqueued.
    pub jobs_put: usize,
    /// Distinct jobs recorded in the ledger.
    pub jobs_done: usize,
    /// Jobs whose enqueue was acknowledged but that were never recorded (must stay empty).
    pub jobs_missing: Vec<String>,
    /// Recorded jobs that were never enqueued, not even uncertainly (must stay empty).
    pub jobs_unexpected: Vec<String>,
    /// Enqueues sent but never acknowledged (the scheduler died or lost its connection after
    /// sending): each may or may not be in the queue.
    pub jobs_uncertain: usize,
    /// Jobs recorded more than once (must stay empty).
    pub jobs_duplicated: Vec<String>,
    /// Redelivered jobs recognised as already done.
    pub redeliveries_recognised: usize,
    /// Leadership terms in order: (scheduler, token).
    pub terms: Vec<(String, i64)>,
    /// True when every job was enqueued under a term at least as new as the previous job's (no
    /// deposed leader enqueued after its successor).
    pub enqueue_tokens_monotonic: bool,
    /// Scheduler failover time (kill of the leader → next Elected).
    pub failover: Option<Duration>,
    /// Requests served per greeter.
    pub served: BTreeMap<String, usize>,
    /// Greeters that saw the new greeting.
    pub saw_new_greeting: BTreeSet<String>,
    /// Greeters alive when the greeting changed.
    pub greeters_at_change: usize,
    /// Replies that carried the new greeting after the change had propagated.
    pub new_greeting_replies: usize,
    /// How long the demo took.
    pub elapsed: Duration,
    /// Jobs the schedulers were asked to produce.
    pub budget_total: usize,
    put_jobs: Vec<String>,
    uncertain_jobs: Vec<String>,
    put_order: Vec<(String, i64)>,
    done_log: Vec<String>,
}

/// Demo settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Jobs to produce in total.
    pub jobs: u64,
    /// Requests through the gateway before and after the config change.
    pub requests: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            jobs: 60,
            requests: 24,
        }
    }
}

async fn client(url: &str) -> Result<Client> {
    connect(url).await
}

/// Runs the demo against `url` and returns what happened.
pub async fn run(url: &str, options: Options) -> Result<Report> {
    let started = Instant::now();
    let admin = client(url).await?;
    admin.delete_all("/demo").await?;
    let config = ConfigWatch::json(
        &admin,
        GREETING,
        Greeting {
            text: "Hello".into(),
        },
    )
    .await?;
    config
        .compare_and_set(
            None,
            &Greeting {
                text: "Hello".into(),
            },
        )
        .await?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    let mut report = Report {
        budget_total: options.jobs as usize,
        ..Report::default()
    };

    say(
        "demo",
        "starting 3 greeters, a gateway, 2 schedulers and 3 workers, each with its own session",
    );
    let mut greeters = Vec::new();
    for i in 1..=3 {
        greeters.push(
            services::greeter(client(url).await?, &format!("greeter-{i}"), tx.clone()).await?,
        );
    }
    let gateway = std::sync::Arc::new(Gateway::start(client(url).await?).await?);
    let budget = services::budget(options.jobs);
    let mut schedulers = Vec::new();
    for i in 1..=2 {
        schedulers.push(
            services::scheduler(
                client(url).await?,
                &format!("scheduler-{i}"),
                Duration::from_millis(40),
                budget.clone(),
                tx.clone(),
            )
            .await?,
        );
    }
    let mut workers = Vec::new();
    for i in 1..=3 {
        workers.push(
            services::worker(client(url).await?, &format!("worker-{i}"), 3, tx.clone()).await?,
        );
    }

    // Traffic through the gateway, four requests in flight at a time.
    let traffic = |n: usize, label: &'static str| {
        let gw = gateway.clone();
        async move {
            let mut replies = Vec::new();
            for chunk in 0..n.div_ceil(4) {
                let mut batch = tokio::task::JoinSet::new();
                for k in (0..4).filter(|k| chunk * 4 + k < n) {
                    let gw = gw.clone();
                    batch.spawn(async move {
                        gw.request(if k % 2 == 0 { "Ada" } else { "Linus" }).await
                    });
                }
                while let Some(r) = batch.join_next().await {
                    match r {
                        Ok(Ok((greeter, reply))) => {
                            say("gateway", format!("{label}: {greeter} answered {reply:?}"));
                            replies.push(reply);
                        }
                        Ok(Err(e)) => say("gateway", format!("{label}: request failed: {e}")),
                        Err(e) => say("gateway", format!("{label}: request task failed: {e}")),
                    }
                }
            }
            replies
        }
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    traffic(options.requests, "before").await;

    say(
        "admin",
        "changing the greeting to \"Bonjour\" (a compare-and-set on the config node)",
    );
    config
        .update(|_| Greeting {
            text: "Bonjour".into(),
        })
        .await?;
    report.greeters_at_change = greeters.len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = traffic(options.requests, "after").await;
    report.new_greeting_replies = after.iter().filter(|r| r.starts_with("Bonjour")).count();

    // Kill the leading scheduler.
    let leader_name = loop {
        drain(&mut rx, &mut report);
        if let Some((name, _)) = report.terms.last() {
            break name.clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let idx = schedulers
        .iter()
        .position(|s| s.name == leader_name)
        .unwrap_or(0);
    let leader = schedulers.remove(idx);
    say(
        "admin",
        format!(
            "killing {} (the leader): its session closes, its latch node vanishes",
            leader.name
        ),
    );
    let killed_at = Instant::now();
    let terms_before = report.terms.len();
    leader.kill().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while report.terms.len() == terms_before && Instant::now() < deadline {
        drain(&mut rx, &mut report);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    if report.terms.len() > terms_before {
        report.failover = Some(killed_at.elapsed());
        let (who, token) = report.terms.last().cloned().unwrap_or_default();
        say(
            "admin",
            format!(
                "failover: {who} leads with token {token} after {:?}",
                killed_at.elapsed()
            ),
        );
    }

    // Kill a worker in the middle of its work, then start a replacement.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let victim = workers.remove(0);
    say(
        "admin",
        format!(
            "killing {} mid-job: its claimed job goes back to the queue",
            victim.name
        ),
    );
    victim.kill().await;
    workers.push(services::worker(client(url).await?, "worker-4", 3, tx.clone()).await?);
    say("admin", "started worker-4 as a replacement");

    // Kill a greeter: the gateway stops routing to it.
    let g = greeters.remove(2);
    say("admin", format!("killing {}: it leaves discovery", g.name));
    g.kill().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    traffic(8, "after greeter-3 died").await;

    // Wait for every job to be put and recorded.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        drain(&mut rx, &mut report);
        let done = services::ledger(&admin).await?.len();
        let queued = menagerie::recipes::Queue::new(&admin, JOBS).len().await?;
        if budget.load(std::sync::atomic::Ordering::SeqCst) == 0
            && queued == 0
            && done >= report.jobs_put
        {
            break;
        }
        if Instant::now() > deadline {
            say("demo", "gave up waiting for the queue to drain");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for s in schedulers.into_iter().chain(workers).chain(greeters) {
        s.kill().await;
    }
    let _ = gateway.client.close().await;
    drain(&mut rx, &mut report);
    let ledger = services::ledger(&admin).await?;
    report.jobs_done = ledger.len();
    let done: BTreeSet<&String> = ledger.iter().collect();
    report.jobs_missing = report
        .put_jobs
        .iter()
        .filter(|j| !done.contains(j))
        .cloned()
        .collect();
    let put: BTreeSet<&String> = report.put_jobs.iter().collect();
    report.jobs_uncertain = report
        .uncertain_jobs
        .iter()
        .filter(|j| !put.contains(j))
        .count();
    let attempted: BTreeSet<&String> = put
        .into_iter()
        .chain(report.uncertain_jobs.iter())
        .collect();
    report.jobs_unexpected = ledger
        .iter()
        .filter(|j| !attempted.contains(j))
        .cloned()
        .collect();
    report.jobs_duplicated = report.duplicates();
    report.enqueue_tokens_monotonic = report.tokens_monotonic();
    report.elapsed = started.elapsed();
    admin.close().await?;
    Ok(report)
}

fn drain(rx: &mut mpsc::UnboundedReceiver<Event>, report: &mut Report) {
    while let Ok(ev) = rx.try_recv() {
        match ev {
            Event::GreetingSeen { greeter, text } => {
                if text == "Bonjour" {
                    report.saw_new_greeting.insert(greeter);
                }
            }
            Event::Served { greeter } => *report.served.entry(greeter).or_default() += 1,
            Event::Elected { scheduler, token } => report.terms.push((scheduler, token)),
            Event::SteppedDown { .. } => {}
            Event::JobPut { item, job, token } => {
                report.jobs_put += 1;
                report.put_jobs.push(job);
                report.put_order.push((item, token));
            }
            Event::JobPutUncertain { job } => report.uncertain_jobs.push(job),
            Event::JobDone { job, .. } => report.done_log.push(job),
            Event::JobAlreadyDone { .. } => report.redeliveries_recognised += 1,
        }
    }
}

impl Report {
    fn duplicates(&self) -> Vec<String> {
        let mut seen = BTreeSet::new();
        self.done_log
            .iter()
            .filter(|j| !seen.insert((*j).clone()))
            .cloned()
            .collect()
    }

    fn tokens_monotonic(&self) -> bool {
        let mut order = self.put_order.clone();
        order.sort_by_key(|(item, _)| menagerie::sequence::parse_sequence(item).unwrap_or(0));
        order.windows(2).all(|w| w[1].1 >= w[0].1)
    }

    /// True when every check of the run passed.
    pub fn ok(&self) -> bool {
        self.jobs_missing.is_empty()
            && self.jobs_duplicated.is_empty()
            && self.jobs_unexpected.is_empty()
            && self.jobs_done >= self.jobs_put
            && self.enqueue_tokens_monotonic
            && self.terms.windows(2).all(|w| w[1].1 > w[0].1)
            && self.saw_new_greeting.len() == self.greeters_at_change
    }

    /// Panics with a clear message if any check of the run failed (used by the end-to-end tests
    /// on every backend).
    pub fn assert_clean(&self) {
        assert!(
            self.jobs_missing.is_empty(),
            "jobs lost: {:?}",
            self.jobs_missing
        );
        assert!(
            self.jobs_duplicated.is_empty(),
            "jobs processed twice: {:?}",
            self.jobs_duplicated
        );
        assert!(
            self.jobs_unexpected.is_empty(),
            "jobs recorded that were never enqueued: {:?}",
            self.jobs_unexpected
        );
        // A leader killed between taking a job from the budget and enqueuing it loses that one job.
        assert!(
            self.jobs_put + self.jobs_uncertain + 1 >= self.budget_total,
            "jobs were not enqueued"
        );
        assert!(self.terms.len() >= 2, "the leader was killed and replaced");
        assert!(
            self.terms.windows(2).all(|w| w[1].1 > w[0].1),
            "each term has a larger token"
        );
        assert!(
            self.enqueue_tokens_monotonic,
            "a deposed leader enqueued after its successor"
        );
        assert_eq!(
            self.saw_new_greeting.len(),
            self.greeters_at_change,
            "config change seen by all"
        );
        assert!(
            self.new_greeting_replies > 0,
            "no reply carried the new greeting"
        );
        assert!(self.ok());
    }

    /// Prints the summary.
    pub fn print(&self) {
        println!();
        println!("summary");
        println!(
            "  jobs enqueued by the leader(s):   {} acknowledged, {} with an unknown outcome",
            self.jobs_put, self.jobs_uncertain
        );
        println!(
            "  jobs recorded in the ledger:      {} (missing {}, duplicated {})",
            self.jobs_done,
            self.jobs_missing.len(),
            self.jobs_duplicated.len()
        );
        println!(
            "  redeliveries recognised as done:  {}",
            self.redeliveries_recognised
        );
        let terms: Vec<String> = self.terms.iter().map(|(s, t)| format!("{s}@{t}")).collect();
        println!("  leadership terms (token order):   {}", terms.join(" -> "));
        println!(
            "  enqueues never from a deposed leader: {}",
            self.enqueue_tokens_monotonic
        );
        if let Some(f) = self.failover {
            println!("  scheduler failover:               {f:?}");
        }
        println!("  requests served per greeter:      {:?}", self.served);
        println!(
            "  greeters that saw \"Bonjour\":      {}/{}",
            self.saw_new_greeting.len(),
            self.greeters_at_change
        );
        println!(
            "  took {:?}; all checks {}",
            self.elapsed,
            if self.ok() { "passed" } else { "FAILED" }
        );
    }
}
