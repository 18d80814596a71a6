//! Random and mutated input thrown at the decoders and at a live server: nothing panics, bad
//! connections are closed, the server keeps serving everyone else.

mod common;

use common::*;
use menagerie_native::durable::decode_txn;
use menagerie_native::server::codec::{Reader, Writer};
use menagerie_native::server::proto::{op, ConnectRequest, Request};
use menagerie_native::tree::DataTree;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn seed() -> u64 {
    std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        })
}

const OPCODES: &[i32] = &[
    op::CREATE,
    op::DELETE,
    op::EXISTS,
    op::GET_DATA,
    op::SET_DATA,
    op::GET_ACL,
    op::SET_ACL,
    op::GET_CHILDREN,
    op::SYNC,
    op::PING,
    op::GET_CHILDREN2,
    op::CHECK,
    op::MULTI,
    op::CREATE2,
    op::RECONFIG,
    op::CHECK_WATCHES,
    op::REMOVE_WATCHES,
    op::CREATE_CONTAINER,
    op::CREATE_TTL,
    op::MULTI_READ,
    op::AUTH,
    op::SET_WATCHES,
    op::GET_EPHEMERALS,
    op::GET_ALL_CHILDREN_NUMBER,
    op::SET_WATCHES2,
    op::ADD_WATCH,
    op::WHO_AM_I,
    op::CLOSE_SESSION,
    12345,
    -77,
];

/// A valid body for `opcode`, to be mutated.
fn valid_body(opcode: i32, rng: &mut Rng) -> Vec<u8> {
    let mut w = Writer::new();
    let path = ["/", "/a", "/a/b", "/zookeeper/config", "/a/", ""][rng.below(6)];
    let create = |w: &mut Writer, ttl: bool| {
        w.string(path)
            .buffer(b"data")
            .int(1)
            .int(31)
            .string("world")
            .string("anyone");
        w.int(if ttl { 5 } else { 0 });
        if ttl {
            w.long(1000);
        }
    };
    match opcode {
        op::CREATE | op::CREATE2 | op::CREATE_CONTAINER => create(&mut w, false),
        op::CREATE_TTL => create(&mut w, true),
        op::DELETE | op::CHECK => {
            w.string(path).int(-1);
        }
        op::EXISTS | op::GET_DATA | op::GET_CHILDREN | op::GET_CHILDREN2 => {
            w.string(path).boolean(true);
        }
        op::SET_DATA => {
            w.string(path).buffer(b"x").int(-1);
        }
        op::SET_ACL => {
            w.string(path)
                .int(1)
                .int(31)
                .string("world")
                .string("anyone")
                .int(-1);
        }
        op::MULTI => {
            w.int(op::CREATE).boolean(false).int(-1);
            create(&mut w, false);
            w.int(op::CHECK).boolean(false).int(-1).string(path).int(-1);
            w.int(-1).boolean(true).int(-1);
        }
        op::MULTI_READ => {
            w.int(op::GET_DATA)
                .boolean(false)
                .int(-1)
                .string(path)
                .boolean(false);
            w.int(-1).boolean(true).int(-1);
        }
        op::CHECK_WATCHES | op::REMOVE_WATCHES => {
            w.string(path).int(3);
        }
        op::AUTH => {
            w.int(0).string("digest").buffer(b"u:p");
        }
        op::SET_WATCHES | op::SET_WATCHES2 => {
            w.long(0).strings(&[path]).strings(&[path]).strings(&[path]);
            if opcode == op::SET_WATCHES2 {
                w.strings(&[path]).strings(&[path]);
            }
        }
        op::ADD_WATCH => {
            w.string(path).int(1);
        }
        _ => {
            w.string(path);
        }
    }
    w.into_bytes()
}

/// Flips bits, truncates, splices in hostile lengths, or replaces everything with noise.
fn mutate(mut b: Vec<u8>, rng: &mut Rng) -> Vec<u8> {
    let hostile: [i32; 7] = [-1, -2, i32::MIN, i32::MAX, 0x7fff, 1 << 20, 0];
    for _ in 0..1 + rng.below(4) {
        match rng.below(6) {
            0 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            1 => b.truncate(rng.below(b.len() + 1)),
            2 if b.len() >= 4 => {
                let i = rng.below(b.len() - 3);
                b[i..i + 4].copy_from_slice(&hostile[rng.below(hostile.len())].to_be_bytes());
            }
            3 => {
                let n = rng.below(64);
                b.extend((0..n).map(|_| rng.next() as u8));
            }
            4 => b = (0..rng.below(256)).map(|_| rng.next() as u8).collect(),
            _ => {
                let i = rng.below(b.len() + 1);
                b.insert(i, rng.next() as u8);
            }
        }
    }
    b
}

#[test]
fn decoders_never_panic() {
    let seed = seed();
    eprintln!("decoder fuzz seed {seed} (FUZZ_SEED={seed} to replay)");
    let mut rng = Rng(seed);
    let stop = Instant::now() + Duration::from_secs(8);
    let mut runs = 0u64;
    let mut tree_bytes = Writer::new();
    DataTree::new().encode_snapshot(&mut tree_bytes);
    let tree_bytes = tree_bytes.into_bytes();
    while runs < 300_000 && Instant::now() < stop {
        let opcode = OPCODES[rng.below(OPCODES.len())];
        let body = mutate(valid_body(opcode, &mut rng), &mut rng);
        let _ = Request::decode(opcode, &body);
        let _ = Request::decode(rng.next() as i32, &body);
        let _ = ConnectRequest::decode(&body);
        let _ = decode_txn(&body);
        let snap = mutate(tree_bytes.clone(), &mut rng);
        let _ = DataTree::decode_snapshot(&mut Reader::new(&snap));
        runs += 1;
    }
    eprintln!("{runs} rounds of random and mutated input decoded without a panic");
    assert!(runs >= 1000, "too few rounds ran ({runs})");
}

static PANICS: AtomicUsize = AtomicUsize::new(0);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_server_survives_hostile_frames() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default_hook(info);
    }));
    let seed = seed();
    eprintln!("server fuzz seed {seed}");
    let mut rng = Rng(seed);
    let server = start_in_memory().await;
    let good = zk(&server).await;
    let stop = Instant::now() + Duration::from_secs(10);
    let mut conns = 0;
    while conns < 300 && Instant::now() < stop {
        let mut raw = Raw::open(server.local_addr()).await;
        if rng.below(5) == 0 {
            // Garbage where the connect request belongs.
            let junk = mutate(Vec::new(), &mut rng);
            let _ = tokio::io::AsyncWriteExt::write_all(&mut raw.stream, &junk).await;
        } else {
            raw.connect(10_000, 0, &[0; 16], 0, Some(false)).await;
            for i in 0..1 + rng.below(8) {
                let opcode = OPCODES[rng.below(OPCODES.len())];
                let mut body = valid_body(opcode, &mut rng);
                if rng.below(2) == 0 {
                    body = mutate(body, &mut rng);
                }
                let mut w = Writer::new();
                w.int(i as i32 + 1).int(opcode).raw(&body);
                let frame = w.into_bytes();
                let frame = if rng.below(4) == 0 {
                    mutate(frame, &mut rng)
                } else {
                    frame
                };
                let mut f = (frame.len() as i32).to_be_bytes().to_vec();
                if rng.below(10) == 0 {
                    f = mutate(f, &mut rng);
                }
                f.extend_from_slice(&frame);
                if tokio::io::AsyncWriteExt::write_all(&mut raw.stream, &f)
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
        drop(raw);
        conns += 1;
    }
    eprintln!("{conns} hostile connections");
    // Everyone else is still served.
    good.create(
        "/still-here",
        b"",
        &zookeeper_client::CreateMode::Persistent.with_acls(zookeeper_client::Acls::anyone_all()),
    )
    .await
    .unwrap();
    assert!(good.check_stat("/still-here").await.unwrap().is_some());
    assert_eq!(four_letter(server.local_addr(), "ruok").await, "imok");
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "a server task panicked");
    server.shutdown().await;
}
