//! The accept loop: TLS handshake with a timeout, HTTP/1.1 or HTTP/2 on the
//! same port, caps on concurrent connections (in all and per caller), idle
//! connections closed, and a graceful drain when the shutdown future
//! completes. When every slot is taken, connections that are only waiting on
//! their clients are shed to make room, so slow clients cannot lock out
//! prompt ones. The only module that accepts connections; `server::preface`
//! bounds the wait for a connection's first bytes, `server::idle` tells when
//! a connection has gone quiet, `server::per_ip` counts connections by
//! caller.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, TryAcquireError, watch};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

mod idle;
mod per_ip;
mod preface;

use crate::activity::{ConnectionActivity, Sample};
use crate::config::Config;
use crate::http::AuthService;
use crate::state::AppState;
use idle::IdleTimer;
use per_ip::{ConnectionsPerIp, IpSlot};

/// How often the accept loop asks for room while every slot is taken.
const SHED_INTERVAL: Duration = Duration::from_millis(50);

/// A connection still in its TLS handshake or before its first request is
/// shed only once it is this old: a client on a busy path needs a moment.
const SHED_PRE_REQUEST_AGE: Duration = Duration::from_secs(1);

/// A serving connection is shed only after it has been seen waiting on its
/// client, with nothing changing, for this long.
const SHED_MIN_WAIT: Duration = Duration::from_millis(250);

/// Time a shed connection with nothing in flight gets to close cleanly
/// (GOAWAY on HTTP/2) before it is dropped.
const SHED_GRACE: Duration = Duration::from_millis(100);

/// Connection-level limits, from `[server]` (and `[http]` for the HTTP/2
/// flow-control windows, which are sized to the largest body).
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Connections served at once per IPv4 address or IPv6 /64; 0: no cap.
    pub max_connections_per_ip: usize,
    /// HTTP/2 streams open at once per connection.
    pub h2_max_concurrent_streams: u32,
    /// HTTP/2 stream flow-control window: room for one whole body.
    pub h2_stream_window: u32,
    /// Time allowed for the TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Time allowed for a request head to arrive.
    pub header_read_timeout: Duration,
    /// Largest request head.
    pub max_header_bytes: usize,
    /// Time a connection may stay open with no request in flight.
    pub idle_timeout: Duration,
    /// Time in-flight requests get on shutdown.
    pub shutdown_timeout: Duration,
    /// Pause between closing the listener and closing idle connections.
    pub drain_grace: Duration,
    /// Time spent not ready but still accepting, before the listener closes.
    pub unready_delay: Duration,
}

impl From<&Config> for ConnectionLimits {
    fn from(config: &Config) -> Self {
        let c = &config.server;
        // The protocol's default window (RFC 9113 6.9.2) unless bodies may be
        // larger; then one whole body, so a client never waits for an update.
        let body = u32::try_from(config.http.max_body_bytes).unwrap_or(u32::MAX);
        Self {
            max_connections: c.max_connections,
            max_connections_per_ip: c.max_connections_per_ip,
            h2_max_concurrent_streams: c.h2_max_concurrent_streams,
            h2_stream_window: body.max(65_535),
            tls_handshake_timeout: Duration::from_secs(c.tls_handshake_timeout_secs),
            header_read_timeout: Duration::from_secs(c.header_read_timeout_secs),
            max_header_bytes: c.max_header_bytes,
            idle_timeout: Duration::from_secs(c.idle_timeout_secs),
            shutdown_timeout: Duration::from_secs(c.shutdown_timeout_secs),
            drain_grace: Duration::from_millis(c.drain_grace_ms),
            unready_delay: Duration::from_millis(c.unready_delay_ms),
        }
    }
}

/// Binds the listening socket. With `reuse_port` (Linux `SO_REUSEPORT`) a
/// new process can bind the same address while the old one still serves,
/// so a binary swap loses no connection.
pub fn bind(addr: std::net::SocketAddr, reuse_port: bool) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    TcpListener::from_std(socket.into())
}

fn http_builder(limits: &ConnectionLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        // Small requests, not bulk transfer: what a client may send ahead
        // of the server reading it is one body per stream and two per
        // connection.
        .initial_stream_window_size(limits.h2_stream_window)
        .initial_connection_window_size(limits.h2_stream_window.saturating_mul(2))
        .adaptive_window(false);
    builder
}

/// Serves HTTPS on `listener` with the TLS configuration currently in `tls`
/// until `shutdown` completes; then reports not ready, keeps accepting for
/// `limits.unready_delay`, stops accepting and waits up to
/// `limits.shutdown_timeout` for open connections to finish their requests.
pub async fn run(
    listener: TcpListener,
    tls: watch::Receiver<Arc<rustls::ServerConfig>>,
    state: Arc<AppState>,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let builder = http_builder(&limits);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let per_ip = Arc::new(ConnectionsPerIp::new(limits.max_connections_per_ip));
    // Tells every connection to finish its requests and close.
    let (drain, _) = watch::channel(());
    // Bumped while every slot is taken: connections waiting on their clients
    // close to make room.
    let (pressure, _) = watch::channel(0u64);
    // A load balancer keeps sending new connections until its health check
    // sees the instance unready; closing the listener before that would
    // reset the ones already queued in the kernel.
    let shutdown = async {
        shutdown.await;
        state.status.set_draining();
        if !limits.unready_delay.is_zero() {
            tracing::info!(
                delay_ms = limits.unready_delay.as_millis() as u64,
                "not ready; accepting until the load balancer has noticed"
            );
            tokio::time::sleep(limits.unready_delay).await;
        }
    };
    tokio::pin!(shutdown);

    'accept: loop {
        // Wait for a free slot before accepting: excess connections queue in
        // the kernel instead of being accepted and starved.
        let permit = match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(TryAcquireError::Closed) => break,
            Err(TryAcquireError::NoPermits) => loop {
                pressure.send_modify(|round| *round = round.wrapping_add(1));
                tokio::select! {
                    permit = Arc::clone(&permits).acquire_owned() => match permit {
                        Ok(p) => break p,
                        Err(_) => break 'accept,
                    },
                    () = tokio::time::sleep(SHED_INTERVAL) => {}
                    () = &mut shutdown => break 'accept,
                }
            },
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(ip_slot) = per_ip.admit(peer.ip()) else {
            state
                .metrics
                .connections_refused
                .with_label_values(&["per_ip"])
                .inc();
            continue; // dropping the stream closes it; the permit returns
        };
        let _ = stream.set_nodelay(true);
        // The certificate in force now; a reload affects new connections only.
        let acceptor = TlsAcceptor::from(Arc::clone(&tls.borrow()));
        let connection = Connection {
            peer,
            accepted: Instant::now(),
            state: Arc::clone(&state),
            builder: builder.clone(),
            limits: limits.clone(),
            drain: drain.subscribe(),
            pressure: pressure.subscribe(),
            _ip_slot: ip_slot,
        };
        // The connection's future is large (the TLS session, the handshake,
        // the preface read and the HTTP/1.1 and HTTP/2 connection state all
        // live in it, about 10 KB): boxed, the runtime hands a pointer around
        // instead of copying all of it several times per connection.
        tokio::spawn(Box::pin(async move {
            let _permit = permit;
            connection.serve(acceptor, stream).await;
        }));
    }

    drop(listener);
    state.status.set_draining();
    tracing::info!(
        connections = state.metrics.open_connections.get(),
        "stopped accepting; draining connections"
    );
    let drained = tokio::time::timeout(limits.shutdown_timeout, async {
        // Connections accepted just before the stop may still be in their
        // TLS handshake, their first request not yet read; a graceful
        // shutdown now would close them unanswered. Let them get that far.
        tokio::time::sleep(limits.drain_grace).await;
        drain.send_replace(());
        // Every connection task holds a permit until it ends, handshake
        // included: having them all back means nothing is left in flight.
        let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
        let _ = permits.acquire_many(all).await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!("shutdown timeout reached with connections still open");
    }
}

/// One accepted connection, before its TLS handshake.
struct Connection {
    peer: std::net::SocketAddr,
    accepted: Instant,
    state: Arc<AppState>,
    builder: auto::Builder<TokioExecutor>,
    limits: ConnectionLimits,
    /// Changes when the server drains.
    drain: watch::Receiver<()>,
    /// Changes while every connection slot is taken.
    pressure: watch::Receiver<u64>,
    /// Held for the connection's life: its place in its caller's count.
    _ip_slot: IpSlot,
}

/// Whether a serving connection has been waiting on its client, unchanged,
/// for [`SHED_MIN_WAIT`]: fed one activity sample per pressure round.
#[derive(Debug, Default)]
struct WaitWatch {
    since: Option<(Instant, Sample)>,
}

impl WaitWatch {
    fn has_waited(&mut self, sample: Sample, now: Instant) -> bool {
        if !sample.is_waiting_on_client() {
            self.since = None;
            return false;
        }
        match self.since {
            Some((since, seen)) if seen == sample => now.duration_since(since) >= SHED_MIN_WAIT,
            _ => {
                self.since = Some((now, sample));
                false
            }
        }
    }
}

/// How a connection's wait for its client's first bytes ended badly.
enum PreRequestEnd {
    /// The phase's timeout passed.
    TimedOut,
    /// Shed to make room while every slot was taken.
    Shed,
}

impl Connection {
    /// True when this connection, still before its first request, may be
    /// shed: it has been open long enough to have sent one.
    fn old_enough_to_shed(&self) -> bool {
        self.accepted.elapsed() >= SHED_PRE_REQUEST_AGE
    }

    fn count_shed(&self) {
        self.state
            .metrics
            .connections_refused
            .with_label_values(&["shed"])
            .inc();
        tracing::debug!(peer = %self.peer, "shed a connection waiting on its client");
    }

    /// Awaits one phase before the first request (handshake, preface)
    /// within `limit`, giving up early if the server needs the slot.
    async fn before_request<F: Future>(
        &mut self,
        limit: Duration,
        phase: F,
    ) -> Result<F::Output, PreRequestEnd> {
        let deadline = tokio::time::sleep(limit);
        tokio::pin!(phase, deadline);
        loop {
            tokio::select! {
                out = &mut phase => return Ok(out),
                () = &mut deadline => return Err(PreRequestEnd::TimedOut),
                Ok(()) = self.pressure.changed() => {
                    if self.old_enough_to_shed() {
                        self.count_shed();
                        return Err(PreRequestEnd::Shed);
                    }
                }
            }
        }
    }

    /// Handshakes, then serves requests until the client closes, the
    /// connection has been idle for `idle_timeout`, the server drains, or
    /// it is shed while waiting on its client with every slot taken.
    async fn serve(mut self, acceptor: TlsAcceptor, stream: TcpStream) {
        let peer = self.peer;
        let state = Arc::clone(&self.state);
        let metrics = &state.metrics;
        let handshake = acceptor.accept(stream);
        let tls_stream = match self
            .before_request(self.limits.tls_handshake_timeout, handshake)
            .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                metrics.tls_handshake_failures.inc();
                tracing::debug!(error = %e, peer = %peer, "TLS handshake failed");
                return;
            }
            Err(PreRequestEnd::TimedOut) => {
                metrics.tls_handshake_failures.inc();
                tracing::debug!(peer = %peer, "TLS handshake timed out");
                return;
            }
            Err(PreRequestEnd::Shed) => return,
        };
        let certificate = crate::tls::client_auth::presented_certificate(
            tls_stream.get_ref().1.peer_certificates(),
            state.client_cas.as_ref(),
            state.now(),
        );
        // The preface read has its own deadline; ours is only a backstop.
        let preface = preface::read_preface(tls_stream, self.limits.header_read_timeout);
        let io = match self
            .before_request(self.limits.header_read_timeout * 2, preface)
            .await
        {
            Ok(Some(io)) => io,
            Ok(None) | Err(PreRequestEnd::TimedOut) => {
                tracing::debug!(peer = %peer, "no request within the header read timeout");
                return;
            }
            Err(PreRequestEnd::Shed) => return,
        };
        metrics.open_connections.inc();
        let activity = Arc::new(ConnectionActivity::default());
        let service = AuthService::new(Arc::clone(&self.state), peer, Arc::clone(&activity))
            .with_client_certificate(certificate);
        let conn = self.builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        let mut idle = IdleTimer::new(Arc::clone(&activity), self.limits.idle_timeout);
        let mut closing = false;
        let shed_by = tokio::time::sleep(Duration::MAX);
        tokio::pin!(shed_by);
        let mut shedding = false;
        let mut waiting = WaitWatch::default();
        let result = loop {
            tokio::select! {
                result = conn.as_mut() => break Ok(result),
                // Nothing in flight for a whole timeout: close the way a
                // drain does (GOAWAY on HTTP/2, close after the current
                // response on HTTP/1.1) and keep serving until it is done.
                // A second timeout with nothing in flight while closing
                // means the client is not finishing the close (HTTP/2 waits
                // for the answer to a PING): drop the connection.
                () = idle.expired() => {
                    if closing {
                        break Err(());
                    }
                    closing = true;
                    metrics.idle_connections_closed.inc();
                    tracing::debug!(peer = %peer, "closing idle connection");
                    conn.as_mut().graceful_shutdown();
                }
                _ = self.drain.changed(), if !closing => {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                // Every slot is taken and this connection holds one for a
                // client that is not sending: close it cleanly if nothing
                // is in flight, else drop it at once.
                Ok(()) = self.pressure.changed(), if !shedding => {
                    if waiting.has_waited(activity.sample(), Instant::now()) {
                        self.count_shed();
                        if !activity.is_empty() {
                            break Err(());
                        }
                        shedding = true;
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                        shed_by.as_mut().reset(Instant::now() + SHED_GRACE);
                    }
                }
                () = &mut shed_by, if shedding => break Err(()),
            }
        };
        match result {
            Ok(Err(e)) => {
                tracing::debug!(error = %e, peer = %peer, "connection ended with an error");
            }
            Err(()) => tracing::debug!(peer = %peer, "dropped a connection"),
            Ok(Ok(())) => {}
        }
        metrics.open_connections.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unchanged_wait_of_the_minimum_length_is_shed() {
        let activity = Arc::new(ConnectionActivity::default());
        let start = Instant::now();
        let mut watch = WaitWatch::default();
        assert!(!watch.has_waited(activity.sample(), start), "first sight");
        assert!(!watch.has_waited(activity.sample(), start + SHED_MIN_WAIT / 2));
        assert!(watch.has_waited(activity.sample(), start + SHED_MIN_WAIT));

        // A request that starts resets the watch; one at work is never shed.
        let mut watch = WaitWatch::default();
        assert!(!watch.has_waited(activity.sample(), start));
        let request = activity.start();
        assert!(!watch.has_waited(activity.sample(), start + SHED_MIN_WAIT * 4));
        drop(request);
        let later = start + SHED_MIN_WAIT * 5;
        assert!(
            !watch.has_waited(activity.sample(), later),
            "a finish is a change"
        );
        assert!(watch.has_waited(activity.sample(), later + SHED_MIN_WAIT));
    }
}
