//! Accepted connections, bounded per peer IP: the `max_connections_per_ip`
//! of `[grpc]`. A connection over the bound is closed at once, before any
//! HTTP/2 work. With the per-client token bucket of `rpc::guard` (a client is
//! a connection) this bounds what one address may ask: at most
//! `max_connections_per_ip x rate_limit_per_client` calls per second.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// Open connections per IP.
#[derive(Default)]
pub struct PerIp {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerIp {
    /// At most `max` connections per IP (0: unlimited).
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(PerIp {
            max,
            open: Mutex::default(),
        })
    }

    /// A slot for one more connection from `ip`, or `None` at the bound.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if self.max > 0 && *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Slot {
            owner: self.clone(),
            ip,
        })
    }

    /// Connections open from `ip`.
    pub fn open(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(&ip).copied().unwrap_or(0)
    }
}

/// One admitted connection; gives its place back when dropped.
pub struct Slot {
    owner: Arc<PerIp>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.owner.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// A TCP connection holding its [`Slot`].
pub struct Capped {
    stream: TcpStream,
    _slot: Slot,
}

/// Admits `stream` if its peer's IP is under the bound; otherwise drops (closes) it.
pub fn admit(per_ip: &Arc<PerIp>, stream: TcpStream) -> Option<Capped> {
    let ip = stream.peer_addr().ok()?.ip();
    match per_ip.admit(ip) {
        Some(slot) => Some(Capped { stream, _slot: slot }),
        None => {
            tracing::debug!(%ip, max = per_ip.max, "gRPC connection refused: too many from this address");
            None
        }
    }
}

impl Connected for Capped {
    type ConnectInfo = TcpConnectInfo;
    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Capped {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Capped {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_per_ip_and_given_back_on_drop() {
        let cap = PerIp::new(2);
        let a: IpAddr = [127, 0, 0, 1].into();
        let b: IpAddr = [127, 0, 0, 2].into();
        let s1 = cap.admit(a).unwrap();
        let _s2 = cap.admit(a).unwrap();
        assert!(cap.admit(a).is_none(), "a third connection from one IP is refused");
        assert!(cap.admit(b).is_some(), "another IP has its own bound");
        drop(s1);
        assert_eq!(cap.open(a), 1);
        assert!(cap.admit(a).is_some(), "a closed connection gives its place back");
        let unlimited = PerIp::new(0);
        let slots: Vec<_> = (0..100).map(|_| unlimited.admit(a).unwrap()).collect();
        assert_eq!(unlimited.open(a), 100);
        drop(slots);
        assert_eq!(unlimited.open(a), 0);
    }
}
