//! The accept loop: TLS handshake with a timeout, HTTP/1.1 or HTTP/2 on the
//! same port, a cap on concurrent connections, idle connections closed, and
//! a graceful drain when the shutdown future completes. The only module that
//! touches sockets; [`preface`] bounds the wait for a connection's first
//! bytes, [`idle`] tells when a connection has gone quiet.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

pub mod idle;
mod preface;

use crate::config::ServerConfig;
use crate::http::{AppState, AuthService};
use idle::{ConnectionActivity, IdleTimer};

/// Connection-level limits, from `[server]`.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Connections served at once.
    pub max_connections: usize,
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
}

impl From<&ServerConfig> for ConnectionLimits {
    fn from(c: &ServerConfig) -> Self {
        Self {
            max_connections: c.max_connections,
            tls_handshake_timeout: Duration::from_secs(c.tls_handshake_timeout_secs),
            header_read_timeout: Duration::from_secs(c.header_read_timeout_secs),
            max_header_bytes: c.max_header_bytes,
            idle_timeout: Duration::from_secs(c.idle_timeout_secs),
            shutdown_timeout: Duration::from_secs(c.shutdown_timeout_secs),
            drain_grace: Duration::from_millis(c.drain_grace_ms),
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
        .max_concurrent_streams(256);
    builder
}

/// Serves HTTPS on `listener` with the TLS configuration currently in `tls`
/// until `shutdown` completes, then stops
/// accepting and waits up to `limits.shutdown_timeout` for open connections
/// to finish their requests.
pub async fn run(
    listener: TcpListener,
    tls: watch::Receiver<Arc<rustls::ServerConfig>>,
    state: Arc<AppState>,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let builder = http_builder(&limits);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    // Tells every connection to finish its requests and close.
    let (drain, _) = watch::channel(());
    tokio::pin!(shutdown);

    loop {
        // Wait for a free slot before accepting: excess connections queue in
        // the kernel instead of being accepted and starved.
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
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
        let _ = stream.set_nodelay(true);
        // The certificate in force now; a reload affects new connections only.
        let acceptor = TlsAcceptor::from(Arc::clone(&tls.borrow()));
        let connection = Connection {
            peer,
            state: Arc::clone(&state),
            builder: builder.clone(),
            limits: limits.clone(),
            drain: drain.subscribe(),
        };
        tokio::spawn(async move {
            let _permit = permit;
            connection.serve(acceptor, stream).await;
        });
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
    state: Arc<AppState>,
    builder: auto::Builder<TokioExecutor>,
    limits: ConnectionLimits,
    /// Changes when the server drains.
    drain: watch::Receiver<()>,
}

impl Connection {
    /// Handshakes, then serves requests until the client closes, the
    /// connection has been idle for `idle_timeout`, or the server drains.
    async fn serve(mut self, acceptor: TlsAcceptor, stream: TcpStream) {
        let peer = self.peer;
        let metrics = &self.state.metrics;
        let handshake = acceptor.accept(stream);
        let tls_stream =
            match tokio::time::timeout(self.limits.tls_handshake_timeout, handshake).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    metrics.tls_handshake_failures.inc();
                    tracing::debug!(error = %e, peer = %peer, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    metrics.tls_handshake_failures.inc();
                    tracing::debug!(peer = %peer, "TLS handshake timed out");
                    return;
                }
            };
        let Some(io) = preface::read_preface(tls_stream, self.limits.header_read_timeout).await
        else {
            tracing::debug!(peer = %peer, "no request within the header read timeout");
            return;
        };
        metrics.open_connections.inc();
        let activity = Arc::new(ConnectionActivity::default());
        let service = AuthService::new(Arc::clone(&self.state), peer, Arc::clone(&activity));
        let conn = self.builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        let mut idle = IdleTimer::new(activity, self.limits.idle_timeout);
        let mut closing = false;
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
            }
        };
        match result {
            Ok(Err(e)) => {
                tracing::debug!(error = %e, peer = %peer, "connection ended with an error");
            }
            Err(()) => tracing::debug!(peer = %peer, "dropped a connection that would not close"),
            Ok(Ok(())) => {}
        }
        metrics.open_connections.dec();
    }
}
