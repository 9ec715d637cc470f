//! A TCP relay in front of a real server, that a test can take down and bring back on the
//! same port. Down: every open connection is cut and new ones are refused, which is what
//! a client sees when the server behind it stops. Up: connections reach the server again,
//! with its state intact (a restarted moto would have lost its queues, which would test
//! moto, not us).
//!
//! A tapped relay ([`Relay::start_tapped`]) also reads the HTTP/1.1 requests going
//! upstream ([`Tap`]): it counts the bytes, logs each request (method, path, Upload-Offset
//! and how many body bytes went through), can cut the connection carrying the byte at
//! chosen positions of the upstream stream, and can hold a PATCH before it goes up.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

pub struct Relay {
    pub addr: SocketAddr,
    target: SocketAddr,
    accept: Mutex<Option<JoinHandle<()>>>,
    tap: Option<Arc<Tap>>,
}

/// One request that went (at least partly) upstream through a tapped relay.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Its `Upload-Offset` header.
    pub upload_offset: Option<u64>,
    /// Its `Content-Length` header.
    pub content_length: u64,
    /// Body bytes forwarded upstream (less than `content_length` if it was cut).
    pub body_sent: u64,
}

/// What a tapped relay saw and does.
#[derive(Default)]
pub struct Tap {
    /// Bytes forwarded upstream, every connection together.
    pub upstream_bytes: AtomicU64,
    /// Cut points not reached yet: positions in the upstream byte stream, ascending.
    cuts: Mutex<VecDeque<u64>>,
    /// Cuts done.
    pub cuts_done: AtomicU64,
    /// Requests seen, in order.
    pub requests: Mutex<Vec<Request>>,
    /// Hold a PATCH whose Upload-Offset is at least this (before any of it goes up).
    hold_from: Mutex<Option<u64>>,
    pub holding: AtomicBool,
    held: Notify,
    release: Notify,
    /// Set when a request could not be parsed (chunked encoding, garbage): the log is then
    /// incomplete and a test must not trust it.
    pub unparsed: AtomicBool,
}

impl Tap {
    /// Cut the connection that carries upstream byte number `at` (0-based), after
    /// forwarding the bytes before it; `at` is a position in the total of every connection.
    pub fn cut_at(&self, mut at: Vec<u64>) {
        at.sort_unstable();
        *self.cuts.lock().unwrap() = at.into();
    }

    /// Hold the first PATCH whose Upload-Offset is `offset` or more (None: hold nothing).
    pub fn hold_patch_from(&self, offset: Option<u64>) {
        *self.hold_from.lock().unwrap() = offset;
    }

    /// Waits until a PATCH is held.
    pub async fn held(&self) {
        loop {
            let notified = self.held.notified();
            if self.holding.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }

    /// Lets a held PATCH go on (to whatever is upstream now).
    pub fn release(&self) {
        self.holding.store(false, Ordering::SeqCst);
        self.release.notify_waiters();
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

/// An HTTP/1.1 request parser over the bytes a client sends (requests one after the other,
/// bodies by Content-Length, as reqwest sends them).
#[derive(Default)]
struct Parser {
    head: Vec<u8>,
    /// Body bytes of the current request still to come, and its index in the log.
    body_left: u64,
    current: Option<usize>,
}

impl Parser {
    /// Feeds bytes about to go upstream; true if a PATCH to hold begins in them.
    fn feed(&mut self, tap: &Tap, mut bytes: &[u8]) -> bool {
        let mut hold = false;
        while !bytes.is_empty() {
            if self.body_left > 0 {
                let n = (bytes.len() as u64).min(self.body_left);
                self.body_left -= n;
                if let Some(i) = self.current {
                    tap.requests.lock().unwrap()[i].body_sent += n;
                }
                bytes = &bytes[n as usize..];
                continue;
            }
            // Header bytes, up to the blank line.
            let take = match find_end(&self.head, bytes) {
                Some(k) => k,
                None => {
                    self.head.extend_from_slice(bytes);
                    return hold;
                }
            };
            self.head.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            let text = String::from_utf8_lossy(&self.head).into_owned();
            self.head.clear();
            let mut lines = text.split("\r\n");
            let mut first = lines.next().unwrap_or_default().split(' ');
            let (method, path) = (first.next().unwrap_or_default().to_string(), first.next().unwrap_or_default().to_string());
            let mut req = Request { method, path, upload_offset: None, content_length: 0, body_sent: 0 };
            for line in lines {
                let Some((k, v)) = line.split_once(':') else { continue };
                match k.trim().to_ascii_lowercase().as_str() {
                    "content-length" => req.content_length = v.trim().parse().unwrap_or(0),
                    "upload-offset" => req.upload_offset = v.trim().parse().ok(),
                    "transfer-encoding" => tap.unparsed.store(true, Ordering::SeqCst),
                    _ => {}
                }
            }
            if req.method == "PATCH" {
                let mut from = tap.hold_from.lock().unwrap();
                if from.is_some_and(|f| req.upload_offset.unwrap_or(0) >= f) {
                    *from = None;
                    hold = true;
                }
            }
            self.body_left = req.content_length;
            let mut log = tap.requests.lock().unwrap();
            log.push(req);
            self.current = Some(log.len() - 1);
        }
        hold
    }
}

/// How many bytes of `more` complete the header block begun by `head` (None: not yet).
fn find_end(head: &[u8], more: &[u8]) -> Option<usize> {
    let tail = &head[head.len().saturating_sub(3)..];
    let joined: Vec<u8> = tail.iter().chain(more.iter()).copied().collect();
    joined.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4 - tail.len())
}

/// Relays one connection through the tap: client → server parsed, counted, cut or held;
/// server → client as it comes.
async fn tapped(client: TcpStream, server: TcpStream, tap: Arc<Tap>) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = async {
        let mut parser = Parser::default();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    let _ = sw.shutdown().await;
                    return std::future::pending::<()>().await; // the answer may still come
                }
                Ok(n) => n,
            };
            // How much goes up before a cut point, if one falls in these bytes.
            let (send, cut) = {
                let mut cuts = tap.cuts.lock().unwrap();
                let at = tap.upstream_bytes.load(Ordering::SeqCst);
                match cuts.front() {
                    Some(&c) if c < at + n as u64 => {
                        cuts.pop_front();
                        (c.saturating_sub(at) as usize, true)
                    }
                    _ => (n, false),
                }
            };
            let hold = parser.feed(&tap, &buf[..send]);
            if hold {
                tap.holding.store(true, Ordering::SeqCst);
                let released = tap.release.notified();
                tap.held.notify_waiters();
                released.await;
            }
            tap.upstream_bytes.fetch_add(send as u64, Ordering::SeqCst);
            if send > 0 && sw.write_all(&buf[..send]).await.is_err() {
                return;
            }
            if cut {
                tap.cuts_done.fetch_add(1, Ordering::SeqCst);
                return; // drops both sockets
            }
        }
    };
    let down = tokio::io::copy(&mut sr, &mut cw);
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

impl Relay {
    /// A relay on a free loopback port to `target` (`host:port`), up.
    pub async fn start(target: &str) -> Relay {
        Self::start_with(target, None).await
    }

    /// A relay that reads what goes upstream (see [`Tap`]).
    pub async fn start_tapped(target: &str) -> Relay {
        Self::start_with(target, Some(Arc::new(Tap::default()))).await
    }

    async fn start_with(target: &str, tap: Option<Arc<Tap>>) -> Relay {
        let target = tokio::net::lookup_host(target).await.unwrap().next().expect("target address");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay = Relay { addr: listener.local_addr().unwrap(), target, accept: Mutex::new(None), tap };
        relay.serve(listener);
        relay
    }

    /// The tap of a relay made by [`Relay::start_tapped`].
    pub fn tap(&self) -> &Tap {
        self.tap.as_deref().expect("a tapped relay")
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Cuts every connection and refuses new ones.
    pub fn down(&self) {
        if let Some(task) = self.accept.lock().unwrap().take() {
            task.abort();
        }
    }

    /// Accepts again, on the same port.
    pub async fn up(&self) {
        let listener = TcpListener::bind(self.addr).await.expect("rebind the relay's port");
        self.serve(listener);
    }

    fn serve(&self, listener: TcpListener) {
        let target = self.target;
        let tap = self.tap.clone();
        // The accept loop owns its connections: aborting it drops (closes) all of them.
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((mut client, _)) = listener.accept().await else { continue };
                let tap = tap.clone();
                conns.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(target).await {
                        match tap {
                            Some(tap) => tapped(client, server, tap).await,
                            None => {
                                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                            }
                        }
                    }
                });
                while conns.try_join_next().is_some() {}
            }
        });
        *self.accept.lock().unwrap() = Some(task);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.down();
    }
}
