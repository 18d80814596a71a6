//! Backend-independent tests of caches, config watch, discovery and balancing.

use super::ok;
use crate::{
    BalancerOptions, CacheEvent, ConfigWatch, LeastConnections, ServiceDiscovery, ServiceInstance,
    ServiceRegistry, Strategy, TreeCache,
};
use menagerie_core::conformance::{scope, within, BackendFactory};
use menagerie_core::{path, Client, CreateMode};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// The server's view of a subtree, for comparing with a cache.
async fn server_view(c: &Client, root: &str) -> BTreeMap<String, (Vec<u8>, i64, i64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_string()];
    while let Some(p) = stack.pop() {
        if let Ok((data, stat)) = c.get(&p).await {
            if let Ok((kids, _)) = c.children(&p).await {
                stack.extend(kids.iter().map(|k| path::join(&p, k)));
            }
            out.insert(p, (data, stat.czxid, stat.mzxid));
        }
    }
    out
}

async fn cache_matches(cache: &TreeCache, c: &Client, root: &str) {
    within("the cache to match the server", async {
        loop {
            let server = server_view(c, root).await;
            let cached: BTreeMap<String, (Vec<u8>, i64, i64)> = cache
                .snapshot()
                .into_iter()
                .map(|(k, n)| (k, (n.data, n.stat.czxid, n.stat.mzxid)))
                .collect();
            if cached == server {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// A tree cache follows creates, sets, deletes and a delete-then-recreate (reported as Removed
/// then Added, with the new czxid), and matches the server afterwards.
pub async fn tree_cache_misses_nothing(f: &dyn BackendFactory) {
    let s = scope(f, "tree_cache").await;
    let c = &s.client;
    ok(
        c.create_all("/t/a", b"1", CreateMode::Persistent).await,
        "create",
    );
    let cache = ok(TreeCache::start(c, "/t").await, "start cache");
    assert_eq!(cache.children("/t"), ["a"]);
    let mut events = cache.events();
    let writer = s.other_client().await;
    for i in 0..20 {
        ok(
            writer.set("/t/a", format!("v{i}").as_bytes(), None).await,
            "set",
        );
    }
    ok(
        writer.create("/t/b", b"", CreateMode::Persistent).await,
        "create b",
    );
    ok(
        writer
            .create("/t/b/c", b"deep", CreateMode::Persistent)
            .await,
        "create b/c",
    );
    let old = ok(writer.get("/t/a").await, "get a").1.czxid;
    ok(writer.delete("/t/a", None).await, "delete a");
    ok(
        writer
            .create("/t/a", b"again", CreateMode::Persistent)
            .await,
        "recreate a",
    );
    cache_matches(&cache, c, "/t").await;
    assert_eq!(cache.get("/t/a").expect("a cached").data, b"again");
    assert_ne!(cache.get("/t/a").unwrap().stat.czxid, old);
    let mut removed_a = false;
    let mut added_after = false;
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(200), events.next()).await {
        match ev {
            CacheEvent::Removed { path } if path == "/t/a" => removed_a = true,
            CacheEvent::Added { path, .. } if path == "/t/a" && removed_a => added_after = true,
            _ => {}
        }
    }
    assert!(
        removed_a && added_after,
        "delete-then-recreate must be reported"
    );
    assert_eq!(cache.get("/t/b/c").expect("deep node cached").data, b"deep");
}

/// After its session expires, a cache rescans, reports Resynced, and matches the changes made
/// meanwhile.
pub async fn tree_cache_resyncs_after_expiry(f: &dyn BackendFactory) {
    let s = scope(f, "tree_cache_expiry").await;
    let a = s.other_client().await;
    ok(
        s.client
            .create_all("/t/x", b"1", CreateMode::Persistent)
            .await,
        "create",
    );
    let cache = ok(TreeCache::start(&a, "/t").await, "start cache");
    let mut events = cache.events();
    ok(f.expire(a.backend()).await, "expire the cache's session");
    ok(s.client.set("/t/x", b"2", None).await, "set while expired");
    ok(
        s.client.create("/t/y", b"", CreateMode::Persistent).await,
        "create while expired",
    );
    within("Resynced", async {
        loop {
            if let Some(CacheEvent::Resynced) = events.next().await {
                return;
            }
        }
    })
    .await;
    cache_matches(&cache, &s.client, "/t").await;
    ok(s.client.set("/t/y", b"after", None).await, "set after");
    cache_matches(&cache, &s.client, "/t").await;
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Default)]
struct Settings {
    greeting: String,
    round: u32,
}

/// One config change after another reaches 100 watchers (10 sessions × 10 watches); none misses
/// the last value; deletion brings the default back; re-creation is seen.
pub async fn config_change_reaches_100_watchers(f: &dyn BackendFactory) {
    let s = scope(f, "config_100").await;
    let default = Settings {
        greeting: "default".into(),
        round: 0,
    };
    let mut watchers = Vec::new();
    for _ in 0..10 {
        let c = s.other_client().await;
        for _ in 0..10 {
            watchers.push(ok(
                ConfigWatch::json(&c, "/cfg", default.clone()).await,
                "watch",
            ));
        }
    }
    assert!(watchers.iter().all(|w| w.current().version.is_none()));
    let admin = ok(
        ConfigWatch::json(&s.client, "/cfg", default.clone()).await,
        "admin",
    );
    for round in 1..=20 {
        ok(
            admin
                .update(|_| Settings {
                    greeting: format!("hello {round}"),
                    round,
                })
                .await,
            "update",
        );
    }
    within("all 100 watchers to see round 20", async {
        while !watchers.iter().all(|w| w.current().value.round == 20) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    ok(admin.delete().await, "delete");
    within("the default everywhere", async {
        while !watchers.iter().all(|w| *w.current().value == default) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    ok(
        admin
            .compare_and_set(
                None,
                &Settings {
                    greeting: "back".into(),
                    round: 21,
                },
            )
            .await,
        "recreate",
    );
    within("re-creation everywhere", async {
        while !watchers.iter().all(|w| w.current().value.round == 21) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

/// Concurrent read-modify-write updates never lose an increment (compare-and-set).
pub async fn config_updates_are_compare_and_set(f: &dyn BackendFactory) {
    let s = scope(f, "config_cas").await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let c = s.other_client().await;
        tasks.push(tokio::spawn(async move {
            let cfg = ok(ConfigWatch::json(&c, "/counter", 0u64).await, "watch");
            for _ in 0..25 {
                ok(cfg.update(|n| n + 1).await, "update");
            }
        }));
    }
    for t in tasks {
        within("updaters", t).await.expect("task");
    }
    let (data, _) = ok(s.client.get("/counter").await, "get");
    assert_eq!(data, b"100");
    let cfg = ok(
        ConfigWatch::json(&s.client, "/counter", 0u64).await,
        "watch",
    );
    assert_eq!(
        cfg.compare_and_set(Some(0), &7).await.unwrap_err().kind(),
        menagerie_core::ErrorKind::BadVersion
    );
}

/// An instance whose process dies (session closed) leaves discovery; one whose session expires
/// is re-registered; unregistering removes it for good and cleans the service node.
pub async fn discovery_follows_instances(f: &dyn BackendFactory) {
    let s = scope(f, "discovery").await;
    let a = s.other_client().await;
    let b = s.other_client().await;
    let reg_a = ServiceRegistry::new(&a, "/services");
    let reg_b = ServiceRegistry::new(&b, "/services");
    ok(
        reg_a
            .register(ServiceInstance::new("web", "a", "10.0.0.1", 80))
            .await,
        "register a",
    );
    ok(
        reg_b
            .register(ServiceInstance::new("web", "b", "10.0.0.2", 80))
            .await,
        "register b",
    );
    let cache = ok(
        ServiceDiscovery::new(&s.client, "/services")
            .cache("web")
            .await,
        "cache",
    );
    let ids = |c: &crate::ServiceCache| c.instances().into_iter().map(|i| i.id).collect::<Vec<_>>();
    within("both instances", async {
        while ids(&cache) != ["a", "b"] {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    ok(f.expire(b.backend()).await, "expire b's session");
    within("b re-registered under its new session", async {
        loop {
            let owner = s
                .client
                .exists("/services/web/b")
                .await
                .ok()
                .flatten()
                .map(|st| st.ephemeral_owner);
            if owner == Some(b.session_id()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    ok(reg_b.mark_down("web", "b").await, "mark down");
    within("marked-down instance skipped", async {
        while ids(&cache) != ["a"] {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_eq!(cache.all_instances().len(), 2);
    ok(reg_b.mark_up("web", "b").await, "mark up");
    ok(a.close().await, "instance a dies");
    within("a leaves discovery", async {
        while ids(&cache) != ["b"] {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    ok(reg_b.unregister("web", "b").await, "unregister b");
    within("the empty service node is cleaned up", async {
        while s
            .client
            .exists("/services/web")
            .await
            .ok()
            .flatten()
            .is_some()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// Providers: round-robin cycles, random and sticky pick only available instances, sticky sticks
/// until its instance goes.
pub async fn discovery_provider_strategies(f: &dyn BackendFactory) {
    let s = scope(f, "providers").await;
    let reg = ServiceRegistry::new(&s.client, "/services");
    for id in ["a", "b", "c"] {
        ok(
            reg.register(ServiceInstance::new("db", id, "h", 1)).await,
            "register",
        );
    }
    let cache = ok(
        ServiceDiscovery::new(&s.client, "/services")
            .cache("db")
            .await,
        "cache",
    );
    let rr = cache.provider(Strategy::RoundRobin);
    let picks: Vec<String> = (0..6).map(|_| rr.get().unwrap().id).collect();
    assert_eq!(&picks[..3], &picks[3..], "round robin cycles");
    let mut distinct = picks.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3);
    let random = cache.provider(Strategy::Random);
    assert!((0..30).all(|_| ["a", "b", "c"].contains(&random.get().unwrap().id.as_str())));
    let sticky = cache.provider(Strategy::Sticky);
    let first = sticky.get().unwrap().id;
    assert!((0..10).all(|_| sticky.get().unwrap().id == first));
    ok(
        reg.unregister("db", &first).await,
        "unregister the sticky one",
    );
    within("sticky moves on", async {
        while sticky.get().map(|i| i.id) == Some(first.clone()) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

async fn balancer_on(c: &Client, service: &str) -> LeastConnections {
    let cache = ok(
        ServiceDiscovery::new(c, "/services").cache(service).await,
        "cache",
    );
    let opts = BalancerOptions {
        counts_path: "/connections".into(),
        ..BalancerOptions::default()
    };
    ok(LeastConnections::start(c, cache, opts).await, "balancer")
}

/// Another client's open connections count for everyone, until that client dies.
pub async fn dead_clients_connections_stop_counting(f: &dyn BackendFactory) {
    let s = scope(f, "lb_dead_client").await;
    let reg = ServiceRegistry::new(&s.client, "/services");
    for id in ["a", "b"] {
        ok(
            reg.register(ServiceInstance::new("api", id, "h", 1)).await,
            "register",
        );
    }
    let a = s.other_client().await;
    let lb_a = balancer_on(&a, "api").await;
    let lb_b = balancer_on(&s.other_client().await, "api").await;
    let mut held = Vec::new();
    for _ in 0..6 {
        held.push(ok(lb_a.pick(), "pick"));
    }
    let load_of = |lb: &LeastConnections| -> i64 { lb.loads().iter().map(|(_, l)| *l).sum() };
    within("b sees a's 6 connections", async {
        while load_of(&lb_b) != 6 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    ok(a.close().await, "client a dies holding its connections");
    within("a's connections stop counting", async {
        while load_of(&lb_b) != 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    drop(held);
}

/// 1,000 picks from two clients with uneven hold times (one instance is slow) go mostly to the
/// fast instances.
pub async fn least_connections_avoids_the_loaded_instance(f: &dyn BackendFactory) {
    let s = scope(f, "lb_spread").await;
    let reg = ServiceRegistry::new(&s.client, "/services");
    for id in ["fast-1", "fast-2", "slow"] {
        ok(
            reg.register(ServiceInstance::new("api", id, "h", 1)).await,
            "register",
        );
    }
    let picks = Arc::new(std::sync::Mutex::new(HashMap::<String, usize>::new()));
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let lb = Arc::new(balancer_on(&s.other_client().await, "api").await);
        for _ in 0..4 {
            let (lb, picks) = (lb.clone(), picks.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..125 {
                    let g = ok(lb.pick(), "pick");
                    let id = g.instance().id.clone();
                    *picks.lock().unwrap().entry(id.clone()).or_default() += 1;
                    let hold = if id == "slow" { 20 } else { 1 };
                    tokio::time::sleep(Duration::from_millis(hold)).await;
                    drop(g);
                }
            }));
        }
    }
    for t in tasks {
        within("1,000 picks", t).await.expect("task");
    }
    let p = picks.lock().unwrap().clone();
    let total: usize = p.values().sum();
    assert_eq!(total, 1000);
    let slow = p.get("slow").copied().unwrap_or(0);
    for fast in ["fast-1", "fast-2"] {
        let n = p.get(fast).copied().unwrap_or(0);
        assert!(
            slow * 2 < n,
            "the slow instance got {slow} picks, {fast} only {n}: {p:?}"
        );
    }
    println!("least-connections spread over 1,000 picks: {p:?}");
}
