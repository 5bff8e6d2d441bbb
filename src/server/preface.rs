//! The first bytes of a connection, read under a deadline before hyper sees
//! the stream. hyper-util's automatic HTTP/1-or-2 detection waits for them
//! without a timer, so a client that completes the TLS handshake and then
//! stays silent (or stops inside the HTTP/2 preface) would hold its
//! connection slot forever.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// The HTTP/2 connection preface (RFC 9113 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A stream whose first bytes were already read; they are served again
/// before the rest.
#[derive(Debug)]
pub struct Prefixed<S> {
    prefix: Bytes,
    inner: S,
}

/// Reads until the bytes tell HTTP/1 from HTTP/2 (the whole HTTP/2 preface,
/// or a byte that departs from it), within `limit`. `None` when the peer
/// closed, failed or was too slow.
pub async fn read_preface<S>(mut stream: S, limit: Duration) -> Option<Prefixed<S>>
where
    S: AsyncRead + Unpin,
{
    let read = async {
        let mut prefix = Vec::with_capacity(H2_PREFACE.len());
        let mut chunk = [0u8; 512];
        // Each pass adds at least one byte, so this ends by the preface's length.
        while prefix.len() < H2_PREFACE.len() && H2_PREFACE.starts_with(&prefix) {
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            prefix.extend_from_slice(&chunk[..n]);
        }
        Some(prefix)
    };
    let prefix = tokio::time::timeout(limit, read).await.ok()??;
    Some(Prefixed {
        prefix: Bytes::from(prefix),
        inner: stream,
    })
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.has_remaining() {
            let n = self.prefix.len().min(buf.remaining());
            let head = self.prefix.split_to(n);
            buf.put_slice(&head);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    #[tokio::test]
    async fn prefix_is_served_again_then_the_rest() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let mut stream = read_preface(server, Duration::from_secs(1)).await.unwrap();
        client.write_all(b"Host: x\r\n\r\n").await.unwrap();
        drop(client);
        let mut all = String::new();
        stream.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    }

    #[tokio::test]
    async fn the_whole_http2_preface_is_awaited() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(&H2_PREFACE[..10]).await.unwrap();
        let reading = tokio::spawn(read_preface(server, Duration::from_secs(5)));
        tokio::time::sleep(Duration::from_millis(50)).await;
        client.write_all(&H2_PREFACE[10..]).await.unwrap();
        let mut stream = reading.await.unwrap().unwrap();
        let mut buf = [0u8; 24];
        stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf[..], H2_PREFACE);
    }

    #[tokio::test]
    async fn silence_and_a_stalled_preface_time_out() {
        let (_client, server) = tokio::io::duplex(64);
        assert!(
            read_preface(server, Duration::from_millis(50))
                .await
                .is_none()
        );
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
        assert!(
            read_preface(server, Duration::from_millis(50))
                .await
                .is_none()
        );
        let (client, server) = tokio::io::duplex(64);
        drop(client);
        assert!(read_preface(server, Duration::from_secs(1)).await.is_none());
    }
}
