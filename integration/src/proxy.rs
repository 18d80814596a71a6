//! A loopback TCP proxy the tests drive: drop every connection, refuse new ones, stall for a
//! while, add delay. One proxy per client cuts that client alone.

use std::io::Read;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Default)]
struct ProxyState {
    blocked: AtomicBool,
    stopped: AtomicBool,
    delay_ms: AtomicU64,
    conns: Mutex<Vec<TcpStream>>,
}

/// A TCP proxy on 127.0.0.1 in front of one upstream address. [`block`](Proxy::block) cuts every
/// connection and refuses new ones (a network partition as the client sees it);
/// [`unblock`](Proxy::unblock) lets connections through again. Stops on drop.
///
/// ```no_run
/// let p = menagerie_integration::proxy::Proxy::start("127.0.0.1:2379".parse().unwrap());
/// let through = format!("127.0.0.1:{}", p.port());
/// p.block();
/// p.unblock();
/// ```
#[derive(Debug)]
pub struct Proxy {
    port: u16,
    state: Arc<ProxyState>,
}

impl Proxy {
    /// Starts a proxy to `upstream` on a free loopback port.
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let state = Arc::new(ProxyState::default());
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.stopped.load(Ordering::Acquire) {
                    return;
                }
                let Ok(down) = conn else { continue };
                if st.blocked.load(Ordering::Acquire) {
                    let _ = down.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(up) = TcpStream::connect_timeout(&upstream, Duration::from_secs(1)) else {
                    let _ = down.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = down.set_nodelay(true);
                let _ = up.set_nodelay(true);
                {
                    let mut conns = st.conns.lock().unwrap_or_else(|e| e.into_inner());
                    conns.retain(|c| c.peer_addr().is_ok());
                    for s in [&down, &up] {
                        if let Ok(c) = s.try_clone() {
                            conns.push(c);
                        }
                    }
                }
                for (from, to) in [(&down, &up), (&up, &down)] {
                    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
                        continue;
                    };
                    let st2 = st.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        loop {
                            match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    let delay = st2.delay_ms.load(Ordering::Acquire);
                                    if delay > 0 {
                                        std::thread::sleep(Duration::from_millis(delay));
                                    }
                                    if std::io::Write::write_all(&mut to, &buf[..n]).is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                        let _ = from.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Proxy { port, state }
    }

    /// The proxy's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Cuts every open connection and refuses new ones until [`unblock`](Proxy::unblock).
    pub fn block(&self) {
        self.state.blocked.store(true, Ordering::Release);
        let mut conns = self.state.conns.lock().unwrap_or_else(|e| e.into_inner());
        for c in conns.drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// Lets new connections through again.
    pub fn unblock(&self) {
        self.state.blocked.store(false, Ordering::Release);
    }

    /// Adds `delay` before every chunk forwarded, both ways (zero removes it).
    pub fn set_delay(&self, delay: Duration) {
        self.state
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::Release);
    }

    /// Partitions for `d`, then heals.
    pub async fn stall(&self, d: Duration) {
        self.block();
        tokio::time::sleep(d).await;
        self.unblock();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.block();
        self.state.stopped.store(true, Ordering::Release);
        // Wake the accept loop so it sees `stopped`.
        let _ = TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], self.port)),
            Duration::from_millis(200),
        );
    }
}
