//! The LISTEN connection: one dedicated connection outside the pool that
//! waits for `NOTIFY auth_server_changes` and bumps a `watch` counter, so a
//! poller reacts within milliseconds instead of at its next interval.
//! Notifications are best effort (lost while disconnected), so every
//! reconnect bumps the counter too and the poller re-reads the change log.

use std::future::poll_fn;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{AsyncMessage, NoTls, Socket};

use super::{CHANGE_CHANNEL, Tls};
use crate::store::DriverError;

/// Starts the listener task; it ends when every receiver is dropped.
pub(super) fn spawn(
    handle: &Handle,
    pg_config: tokio_postgres::Config,
    tls: Tls,
    retry_after: Duration,
) -> watch::Receiver<u64> {
    let (tx, rx) = watch::channel(0);
    handle.spawn(async move {
        loop {
            let outcome = match &tls {
                Tls::Rustls(tls) => listen(&pg_config, tls.clone(), &tx).await,
                Tls::Plain => listen(&pg_config, NoTls, &tx).await,
            };
            match outcome {
                Ok(Ended::NoReceivers) => return,
                Ok(Ended::Disconnected) => {
                    tracing::warn!("change notifications: connection closed; reconnecting")
                }
                Err(e) => tracing::warn!(
                    error = %DriverError::Postgres(e),
                    "change notifications: connection failed"
                ),
            }
            tokio::select! {
                () = tokio::time::sleep(retry_after) => {}
                () = tx.closed() => return,
            }
        }
    });
    rx
}

/// Why [`listen`] returned without an error.
enum Ended {
    /// Nobody is listening any more: stop for good.
    NoReceivers,
    /// The database closed the connection: reconnect.
    Disconnected,
}

/// One connection's life: connect, LISTEN, forward notifications.
async fn listen<T>(
    pg_config: &tokio_postgres::Config,
    tls: T,
    tx: &watch::Sender<u64>,
) -> Result<Ended, tokio_postgres::Error>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    let (client, mut connection) = pg_config.connect(tls).await?;
    let (seen, mut notified) = mpsc::unbounded_channel();
    // The connection must be polled for the LISTEN below to complete, and
    // polling it is also how notifications arrive.
    let driver = tokio::spawn(async move {
        while let Some(message) = poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(_)) => {
                    if seen.send(()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    let result = async {
        client
            .batch_execute(&format!("LISTEN {CHANGE_CHANNEL}"))
            .await?;
        // Changes made while no listener was connected are only in the log.
        tx.send_modify(|n| *n = n.wrapping_add(1));
        loop {
            tokio::select! {
                message = notified.recv() => match message {
                    Some(()) => tx.send_modify(|n| *n = n.wrapping_add(1)),
                    None => return Ok(Ended::Disconnected),
                },
                () = tx.closed() => return Ok(Ended::NoReceivers),
            }
        }
    }
    .await;
    driver.abort();
    result
}
