//! A TCP proxy in front of a PostgreSQL server that loses connections when a test says so.
//!
//! [`FaultProxy`] listens on `127.0.0.1` (an ephemeral port) and relays every
//! connection to the upstream server byte for byte. A test then breaks the
//! connections at a moment of its choosing:
//!
//! - [`FaultProxy::cut_all`] closes every open connection now;
//! - [`FaultProxy::blackout`] does the same and refuses new connections for a
//!   while, as a restarting server does;
//! - [`FaultProxy::cut_when_client_sends`] closes the connection whose client
//!   sends some bytes (a statement's text, or `COMMIT`), before the server sees
//!   them;
//! - [`FaultProxy::cut_after_server_replies_to`] lets the server receive and
//!   run those bytes, then closes the connection instead of relaying the reply:
//!   the "committed, but the acknowledgement was lost" case.
//!
//! Triggers are one-shot; several may be armed at once, and a chunk fires
//! the first armed one it matches. They look at the raw bytes of one read
//! from the client, so they work on unencrypted connections only
//! (`sslmode=disable`, or a client without TLS such as
//! `tokio_postgres::NoTls`). PostgreSQL sends a simple query as `Q`, a length
//! and the text; the extended protocol sends the text in a `P` (Parse)
//! message. So a pattern that is part of the SQL text is seen, unless TCP
//! delivers the message in two reads and the pattern straddles them. On
//! loopback with statements of a few kilobytes that does not happen; a
//! pattern in a multi-megabyte batch may be missed.
//!
//! The proxy runs on a thread and a Tokio runtime of its own, so it keeps
//! relaying while the test blocks (for example on a `dbops` child process).
//! Dropping the proxy stops it and closes its connections.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// How long [`FaultProxy::cut_all`] waits for the connections it cut to close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// The size of one read; a trigger sees at most this many bytes at a time.
const CHUNK: usize = 64 * 1024;

/// A fault-injecting TCP proxy in front of one PostgreSQL server.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// An armed trigger, to check whether it fired.
#[derive(Debug, Clone)]
pub struct Trigger {
    fired: Arc<AtomicBool>,
}

impl Trigger {
    /// Whether a connection was cut by this trigger.
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

impl FaultProxy {
    /// Starts a proxy to `upstream` on a free port of `127.0.0.1`.
    ///
    /// # Panics
    /// When no port can be bound or the proxy's thread cannot start.
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("binding the fault proxy to 127.0.0.1: {e}"));
        std_listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let addr = std_listener.local_addr().expect("the proxy's address");
        let shared = Arc::new(Shared::default());
        let (shutdown, shutdown_rx) = oneshot::channel();
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("fault-proxy-{}", addr.port()))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a Tokio runtime for the fault proxy");
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(std_listener).expect("a Tokio listener");
                    accept_loop(listener, upstream, thread_shared, shutdown_rx).await;
                });
                // Dropping the runtime drops every relay task, closing its sockets.
            })
            .expect("a thread for the fault proxy");
        FaultProxy {
            addr,
            shared,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// Starts a proxy to the server of a `postgres://` URL (its host and port,
    /// 5432 when the URL names none).
    ///
    /// # Panics
    /// When the URL has no host or the host does not resolve.
    pub fn in_front_of(db_url: &str) -> FaultProxy {
        let authority = &db_url[host_and_port(db_url)];
        let with_port = if authority.ends_with(']') || !authority.contains(':') {
            format!("{authority}:5432")
        } else {
            authority.to_owned()
        };
        let upstream = with_port
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .unwrap_or_else(|| panic!("resolving the server of {db_url}"));
        FaultProxy::start(upstream)
    }

    /// The address the proxy listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `db_url` with its host and port replaced by the proxy's, keeping the
    /// user, password, database and parameters but with `sslmode=disable`:
    /// the triggers read plain text, and a client with libpq's default
    /// (`prefer`) or the URL's own sslmode would use TLS when the server
    /// offers it.
    pub fn url_for(&self, db_url: &str) -> String {
        let range = host_and_port(db_url);
        let url = format!(
            "{}{}{}",
            &db_url[..range.start],
            self.addr,
            &db_url[range.end..]
        );
        let (base, query) = url.split_once('?').unwrap_or((&url, ""));
        let mut params: Vec<&str> = query
            .split('&')
            .filter(|param| !param.is_empty() && !param.starts_with("sslmode="))
            .collect();
        params.push("sslmode=disable");
        format!("{base}?{}", params.join("&"))
    }

    /// Closes every open connection, and returns once they are closed: both
    /// the client and the server see the connection end.
    ///
    /// # Panics
    /// When the connections are not closed within ten seconds.
    pub fn cut_all(&self) {
        let state = self.shared.lock();
        self.shared.cut_all_and_wait(state);
    }

    /// Closes every open connection and refuses new ones for `duration`: a
    /// connection made meanwhile is accepted and closed at once, so its
    /// client sees a connection error rather than a hang. Returns once the
    /// open connections are closed; the blackout then runs on its own.
    pub fn blackout(&self, duration: Duration) {
        let mut state = self.shared.lock();
        state.refuse_until = Some(Instant::now() + duration);
        self.shared.cut_all_and_wait(state);
    }

    /// Arms a one-shot trigger: the next time a client sends a chunk that
    /// contains `pattern`, the chunk is dropped (the server never sees it)
    /// and that connection is closed.
    ///
    /// # Panics
    /// When `pattern` is empty.
    pub fn cut_when_client_sends(&self, pattern: &[u8]) -> Trigger {
        self.arm(pattern, Cut::BeforeServer)
    }

    /// Arms a one-shot trigger: the next time a client sends a chunk that
    /// contains `pattern`, the chunk is relayed, and the connection is closed
    /// when the server begins to answer the request holding the pattern,
    /// without relaying that answer. The server has then run the request
    /// (for `COMMIT`: committed), but the client never learns it.
    ///
    /// The proxy follows the protocol's messages to tell that answer from the
    /// end of earlier answers still on their way (a client may go on before
    /// an answer's last message, `ReadyForQuery`, arrives). On an encrypted
    /// connection it cannot; the pattern is not seen there anyway.
    ///
    /// # Panics
    /// When `pattern` is empty.
    pub fn cut_after_server_replies_to(&self, pattern: &[u8]) -> Trigger {
        self.arm(pattern, Cut::BeforeReply)
    }

    /// How many connections are open now.
    pub fn open_connections(&self) -> usize {
        self.shared.lock().open.len()
    }

    /// How many connections were relayed to the server since the start.
    pub fn accepted_connections(&self) -> usize {
        self.shared.lock().accepted
    }

    /// How many connections were refused during blackouts since the start.
    pub fn refused_connections(&self) -> usize {
        self.shared.lock().refused
    }

    fn arm(&self, pattern: &[u8], cut: Cut) -> Trigger {
        assert!(!pattern.is_empty(), "a trigger needs a non-empty pattern");
        let fired = Arc::new(AtomicBool::new(false));
        self.shared.lock().armed.push(Armed {
            pattern: pattern.to_vec(),
            cut,
            fired: Arc::clone(&fired),
        });
        Trigger { fired }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The state the test's thread and the proxy's thread share.
#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Notified whenever a connection closes.
    closed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    /// The open connections, each with the sender that cuts it.
    open: HashMap<u64, Option<oneshot::Sender<()>>>,
    refuse_until: Option<Instant>,
    armed: Vec<Armed>,
    accepted: usize,
    refused: usize,
}

#[derive(Debug)]
struct Armed {
    pattern: Vec<u8>,
    cut: Cut,
    fired: Arc<AtomicBool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// Drop the client's chunk and close.
    BeforeServer,
    /// Relay the client's chunk, then close instead of relaying the answer.
    BeforeReply,
}

/// What a relay does with a chunk from the client.
enum Verdict {
    Relay,
    /// A trigger fired on the pattern found at this offset of the chunk.
    Cut(Cut, usize),
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Registers a new connection, or `None` during a blackout.
    fn admit(&self) -> Option<(u64, oneshot::Receiver<()>)> {
        let mut state = self.lock();
        if state
            .refuse_until
            .is_some_and(|until| Instant::now() < until)
        {
            state.refused += 1;
            return None;
        }
        let (cut, cut_rx) = oneshot::channel();
        let id = state.next_id;
        state.next_id += 1;
        state.accepted += 1;
        state.open.insert(id, Some(cut));
        Some((id, cut_rx))
    }

    fn forget(&self, id: u64) {
        self.lock().open.remove(&id);
        self.closed.notify_all();
    }

    /// Cuts the connections open under `state`, then waits until they are
    /// closed. Connections opened meanwhile are not waited for.
    fn cut_all_and_wait(&self, mut state: MutexGuard<'_, State>) {
        let mut cut_ids = Vec::new();
        for (id, cut) in &mut state.open {
            if let Some(cut) = cut.take() {
                let _ = cut.send(());
            }
            cut_ids.push(*id);
        }
        let (state, timeout) = self
            .closed
            .wait_timeout_while(state, CLOSE_TIMEOUT, |state| {
                cut_ids.iter().any(|id| state.open.contains_key(id))
            })
            .unwrap_or_else(|e| e.into_inner());
        drop(state);
        assert!(
            !timeout.timed_out(),
            "the fault proxy's connections did not close within {CLOSE_TIMEOUT:?}"
        );
    }

    /// Checks a chunk from the client against the armed triggers, firing
    /// (and disarming) the first that matches.
    fn judge(&self, chunk: &[u8]) -> Verdict {
        let mut state = self.lock();
        let Some((index, at)) = state
            .armed
            .iter()
            .enumerate()
            .find_map(|(index, armed)| Some((index, find(chunk, &armed.pattern)?)))
        else {
            return Verdict::Relay;
        };
        let armed = state.armed.remove(index);
        armed.fired.store(true, Ordering::SeqCst);
        Verdict::Cut(armed.cut, at)
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    mut shutdown: oneshot::Receiver<()>,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        let client = match accepted {
            Ok((client, _)) => client,
            Err(_) => {
                // Out of file descriptors, for example: try again shortly.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // During a blackout the client is dropped here: accepted, then closed.
        if let Some((id, cut)) = shared.admit() {
            tokio::spawn(relay(client, upstream, Arc::clone(&shared), id, cut));
        }
    }
}

/// Relays one connection until either side closes it, a trigger fires or the
/// test cuts it; then closes both sides.
async fn relay(
    mut client: TcpStream,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    id: u64,
    mut cut: oneshot::Receiver<()>,
) {
    let server = tokio::select! {
        biased;
        _ = &mut cut => None,
        server = TcpStream::connect(upstream) => server.ok(),
    };
    if let Some(mut server) = server {
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (mut client_read, mut client_write) = client.split();
        let (mut server_read, mut server_write) = server.split();
        let conversation = Mutex::new(Conversation::default());
        tokio::select! {
            biased;
            _ = &mut cut => {}
            _ = pump(&mut client_read, &mut server_write, |chunk| {
                cut_client_chunk(&shared, &conversation, chunk)
            }) => {}
            _ = pump(&mut server_read, &mut client_write, |chunk| {
                lock(&conversation).server_sent(chunk)
            }) => {}
        }
        drop(server);
    }
    drop(client);
    shared.forget(id);
}

/// Relays bytes from `from` to `to` until `from` closes or `cut_at` stops
/// it. `cut_at` sees each chunk read and answers `None` to relay it whole,
/// or `Some(n)` to relay its first `n` bytes and stop.
async fn pump(
    from: &mut ReadHalf<'_>,
    to: &mut WriteHalf<'_>,
    mut cut_at: impl FnMut(&[u8]) -> Option<usize>,
) -> std::io::Result<()> {
    let mut buf = vec![0; CHUNK];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        match cut_at(&buf[..n]) {
            None => to.write_all(&buf[..n]).await?,
            Some(at) => {
                to.write_all(&buf[..at]).await?;
                return Ok(());
            }
        }
    }
}

/// Where to cut a chunk from the client: follows it, and fires the armed
/// triggers it matches.
fn cut_client_chunk(
    shared: &Shared,
    conversation: &Mutex<Conversation>,
    chunk: &[u8],
) -> Option<usize> {
    let mut conversation = lock(conversation);
    match shared.judge(chunk) {
        Verdict::Relay => conversation.client_sent(chunk),
        Verdict::Cut(Cut::BeforeServer, _) => return Some(0),
        Verdict::Cut(Cut::BeforeReply, at) => {
            conversation.client_sent(&chunk[..at]);
            conversation.cut_after_answers = Some(conversation.requests);
            conversation.client_sent(&chunk[at..]);
        }
    }
    None
}

/// Locks `mutex`; a panic while it was held leaves the state usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// The code of an `SSLRequest`, in place of a protocol version.
const SSL_REQUEST: u32 = 80_877_103;
/// The code of a `GSSENCRequest`.
const GSSENC_REQUEST: u32 = 80_877_104;

/// What the proxy follows of one connection's protocol: enough to tell which
/// of the server's bytes answer which of the client's.
///
/// Every request that the server answers with a `ReadyForQuery` (`Z`) ends
/// with one message: the startup message, a simple `Query` (`Q`), a `Sync`
/// (`S`) of the extended protocol or a `FunctionCall` (`F`). So the server's
/// n-th `ReadyForQuery` ends its answer to the client's n-th request.
#[derive(Debug, Default)]
struct Conversation {
    client: Framer,
    server: Framer,
    /// Requests the client has sent in full.
    requests: u64,
    /// `ReadyForQuery` messages the server has sent.
    answers: u64,
    /// The client asked for encryption: the server answers with one bare byte.
    bare_byte_next: bool,
    /// The connection is encrypted: its messages cannot be followed.
    opaque: bool,
    /// Cut the connection where the server begins the answer after this one.
    cut_after_answers: Option<u64>,
}

impl Conversation {
    /// Follows bytes the client sent.
    fn client_sent(&mut self, mut data: &[u8]) {
        while !data.is_empty() && !self.opaque {
            let Some(header) = self.client.feed(&mut data, self.requests == 0) else {
                continue;
            };
            if self.requests > 0 {
                if matches!(header[0], b'Q' | b'S' | b'F') {
                    self.requests += 1;
                }
            } else {
                // Before the startup message, messages have no type byte:
                // the length, then a protocol version or a request code.
                let code = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
                if code == SSL_REQUEST || code == GSSENC_REQUEST {
                    self.bare_byte_next = true;
                } else {
                    self.requests = 1;
                }
            }
        }
    }

    /// Follows bytes the server sent. Returns how many of them to relay
    /// before cutting the connection, or `None` to relay them all.
    fn server_sent(&mut self, chunk: &[u8]) -> Option<usize> {
        let mut data = chunk;
        loop {
            if data.is_empty() {
                return None;
            }
            // The first byte of the awaited answer is here.
            if let Some(after) = self.cut_after_answers
                && (self.opaque || (self.server.at_boundary() && self.answers >= after))
            {
                return Some(chunk.len() - data.len());
            }
            if self.opaque {
                return None;
            }
            if self.bare_byte_next {
                self.bare_byte_next = false;
                self.opaque = data[0] != b'N';
                data = &data[1..];
            } else if let Some(header) = self.server.feed(&mut data, false)
                && header[0] == b'Z'
            {
                self.answers += 1;
            }
        }
    }
}

/// Splits one direction of a connection into PostgreSQL messages.
#[derive(Debug, Default)]
struct Framer {
    header: [u8; 8],
    /// How many bytes of the current message's header have arrived.
    filled: usize,
    /// How many bytes of the current message's body are still to come.
    remaining: usize,
}

impl Framer {
    /// Consumes bytes of `data` up to the end of the current message at most,
    /// and returns the message's header when it ends. A message is a type
    /// byte and a length, except the client's first messages (`untyped`):
    /// a length and a four-byte code.
    fn feed(&mut self, data: &mut &[u8], untyped: bool) -> Option<[u8; 8]> {
        let (size, length_at, counted) = if untyped { (8, 0, 8) } else { (5, 1, 4) };
        if self.filled < size {
            let n = (size - self.filled).min(data.len());
            self.header[self.filled..self.filled + n].copy_from_slice(&data[..n]);
            self.filled += n;
            *data = &data[n..];
            if self.filled < size {
                return None;
            }
            let length = &self.header[length_at..length_at + 4];
            let length = u32::from_be_bytes([length[0], length[1], length[2], length[3]]);
            self.remaining = usize::try_from(length)
                .unwrap_or(usize::MAX)
                .saturating_sub(counted);
        }
        let n = self.remaining.min(data.len());
        self.remaining -= n;
        *data = &data[n..];
        if self.remaining > 0 {
            return None;
        }
        self.filled = 0;
        Some(self.header)
    }

    fn at_boundary(&self) -> bool {
        self.filled == 0
    }
}

/// Where the host and port of a `postgres://user:password@host:port/db?params`
/// URL are: after `://` and any `user@`, up to the path, the parameters or the end.
fn host_and_port(url: &str) -> Range<usize> {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let authority_end = url[after_scheme..]
        .find(['/', '?'])
        .map_or(url.len(), |i| after_scheme + i);
    let start = url[after_scheme..authority_end]
        .rfind('@')
        .map_or(after_scheme, |i| after_scheme + i + 1);
    start..authority_end
}

#[cfg(test)]
mod tests {
    use super::{Conversation, host_and_port};

    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let length = u32::try_from(body.len() + 4).unwrap();
        let mut message = vec![kind];
        message.extend(length.to_be_bytes());
        message.extend(body);
        message
    }

    fn ready() -> Vec<u8> {
        message(b'Z', b"T")
    }

    /// A conversation after the startup message and its answer.
    fn started() -> Conversation {
        let mut conversation = Conversation::default();
        let mut startup = 16_u32.to_be_bytes().to_vec();
        startup.extend(196_608_u32.to_be_bytes()); // Protocol 3.0.
        startup.extend(b"user\0x\0\0");
        assert_eq!(startup.len(), 16);
        conversation.client_sent(&startup);
        let mut answer = message(b'R', &[0, 0, 0, 0]);
        answer.extend(ready());
        assert_eq!(conversation.server_sent(&answer), None);
        conversation
    }

    #[test]
    fn the_reply_cut_spares_the_end_of_an_earlier_answer() {
        let mut conversation = started();
        // An INSERT in the extended protocol; the client reads CommandComplete
        // and sends COMMIT before the ReadyForQuery after it has been relayed.
        let mut insert = message(b'B', b"");
        insert.extend(message(b'E', b""));
        insert.extend(message(b'S', b""));
        conversation.client_sent(&insert);
        let complete = message(b'C', b"INSERT 0 1\0");
        assert_eq!(conversation.server_sent(&complete), None);

        let commit = message(b'Q', b"COMMIT\0");
        let at = commit.windows(6).position(|w| w == b"COMMIT").unwrap();
        conversation.client_sent(&commit[..at]);
        conversation.cut_after_answers = Some(conversation.requests);
        conversation.client_sent(&commit[at..]);

        let mut late = ready();
        let stale = late.len();
        late.extend(message(b'C', b"COMMIT\0"));
        late.extend(ready());
        assert_eq!(conversation.server_sent(&late), Some(stale));
    }

    #[test]
    fn the_reply_cut_waits_for_the_first_byte_of_the_answer() {
        let mut conversation = started();
        conversation.client_sent(&message(b'S', b""));
        conversation.cut_after_answers = Some(conversation.requests);
        conversation.client_sent(&message(b'Q', b"COMMIT\0"));
        // The answer to the Sync comes alone: relayed, nothing cut yet.
        assert_eq!(conversation.server_sent(&ready()), None);
        assert_eq!(
            conversation.server_sent(&message(b'C', b"COMMIT\0")),
            Some(0)
        );
    }

    #[test]
    fn an_encryption_request_is_answered_with_one_bare_byte() {
        let mut conversation = Conversation::default();
        let mut ssl_request = 8_u32.to_be_bytes().to_vec();
        ssl_request.extend(super::SSL_REQUEST.to_be_bytes());
        conversation.client_sent(&ssl_request);
        assert_eq!(conversation.requests, 0);
        assert_eq!(conversation.server_sent(b"N"), None);
        assert!(!conversation.opaque);

        let mut encrypted = Conversation::default();
        encrypted.client_sent(&ssl_request);
        assert_eq!(encrypted.server_sent(b"S\x16\x03"), None);
        assert!(encrypted.opaque);
    }

    fn host(url: &str) -> &str {
        &url[host_and_port(url)]
    }

    #[test]
    fn finds_the_host_and_port() {
        assert_eq!(host("postgres://u:p@h:5/db"), "h:5");
        assert_eq!(host("postgres://u@h/db?sslmode=disable"), "h");
        assert_eq!(host("postgres://h:5"), "h:5");
        assert_eq!(host("postgresql://u:p@[::1]:5?x=y"), "[::1]:5");
    }
}
