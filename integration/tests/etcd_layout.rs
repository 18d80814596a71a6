//! The key layout on a real etcd is the documented one (backends/etcd/LAYOUT.md), and `etcd://`
//! URLs connect.

use etcd_client::GetOptions;
use menagerie_core::url::ConnectUrl;
use menagerie_core::CreateMode;
use menagerie_integration::etcd::shared_single;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_as_documented() {
    let server = shared_single();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let prefix = format!("/layout-{nanos:x}");
    let url = ConnectUrl::parse(&server.url(&prefix)).expect("url");
    let c = menagerie_etcd::connect(&url).await.expect("connect by URL");
    c.create("/a", b"hi", CreateMode::Persistent)
        .await
        .expect("create /a");
    let e = c
        .create("/a/e-", b"", CreateMode::EphemeralSequential)
        .await
        .expect("create /a/e-");
    assert_eq!(e, "/a/e-0000000000");
    c.create("/a/gone", b"", CreateMode::Persistent)
        .await
        .expect("create");
    c.delete("/a/gone", None).await.expect("delete");
    let lease = c.session_id();

    let mut raw = etcd_client::Client::connect([format!("http://{}", server.endpoints()[0])], None)
        .await
        .expect("raw client");
    let r = raw
        .get(format!("{prefix}/"), Some(GetOptions::new().with_prefix()))
        .await
        .expect("get --prefix");
    let keys: Vec<(String, Vec<u8>, i64)> = r
        .kvs()
        .iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(kv.key())
                    .strip_prefix(&prefix)
                    .unwrap_or("?")
                    .to_string(),
                kv.value().to_vec(),
                kv.lease(),
            )
        })
        .collect();
    let names: Vec<&str> = keys.iter().map(|(k, _, _)| k.as_str()).collect();
    let session_key = format!("/s/{lease:016x}");
    assert_eq!(
        names,
        [
            "/d/a",
            "/m/",
            "/m/a",
            "/m/a/e-0000000000",
            "/n/0000/",
            "/n/0001/a",
            "/n/0002/a/e-0000000000",
            session_key.as_str(),
        ],
        "the keys etcdctl get --prefix shows"
    );
    let value = |k: &str| {
        keys.iter()
            .find(|(n, _, _)| n == k)
            .map(|(_, v, l)| (v.clone(), *l))
    };
    let (v, l) = value("/n/0001/a").expect("node key of /a");
    assert!(v.ends_with(b"|hi") && v.len() == 16 && l == 0, "{v:?}");
    let (v, l) = value("/n/0002/a/e-0000000000").expect("node key of the ephemeral");
    assert_eq!(
        (v.len(), l),
        (14, lease),
        "an ephemeral's node key carries the session's lease"
    );
    let (v, _) = value("/m/a").expect("meta key");
    assert!(String::from_utf8_lossy(&v).starts_with("v1 "), "{v:?}");
    c.close().await.expect("close");
}
