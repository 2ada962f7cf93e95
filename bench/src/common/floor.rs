//! The physical floor of a measurement on this machine: the loopback TCP
//! round trip and the latency of one small `fdatasync`.

use super::percentile;
use crate::{failed, BenchError};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Median loopback TCP round trip of a 64-byte message between two tokio
/// tasks (TCP_NODELAY), over `samples` round trips after a warm-up.
pub async fn loopback_rtt(samples: usize) -> Result<Duration, BenchError> {
    let io = |e: std::io::Error| failed(format!("loopback probe: {e}"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(io)?;
    let addr = listener.local_addr().map_err(io)?;
    let echo = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await?;
        s.set_nodelay(true)?;
        let mut buf = [0u8; 64];
        loop {
            if s.read_exact(&mut buf).await.is_err() {
                return Ok::<(), std::io::Error>(());
            }
            s.write_all(&buf).await?;
        }
    });
    let mut c = tokio::net::TcpStream::connect(addr).await.map_err(io)?;
    c.set_nodelay(true).map_err(io)?;
    let msg = [0x5au8; 64];
    let mut buf = [0u8; 64];
    let mut rtts = Vec::with_capacity(samples);
    for i in 0..samples + 200 {
        let t = Instant::now();
        c.write_all(&msg).await.map_err(io)?;
        c.read_exact(&mut buf).await.map_err(io)?;
        if i >= 200 {
            rtts.push(t.elapsed());
        }
    }
    drop(c);
    let _ = echo.await;
    rtts.sort();
    Ok(percentile(&rtts, 50.0))
}

/// Median of `samples` small writes + `fdatasync` on a temporary file in `dir`.
pub fn fsync_median(dir: &Path, samples: usize) -> Result<Duration, BenchError> {
    use std::io::{Seek, SeekFrom, Write};
    let path = dir.join(format!(".bench-fsync-{}", std::process::id()));
    let io = |e: std::io::Error| failed(format!("fsync probe in {}: {e}", dir.display()));
    let mut f = std::fs::File::create(&path).map_err(io)?;
    let mut v = Vec::with_capacity(samples);
    for i in 0..samples + 10 {
        let t = Instant::now();
        f.seek(SeekFrom::Start(0)).map_err(io)?;
        f.write_all(&[i as u8; 64]).map_err(io)?;
        f.sync_data().map_err(io)?;
        if i >= 10 {
            v.push(t.elapsed());
        }
    }
    drop(f);
    let _ = std::fs::remove_file(&path);
    v.sort();
    Ok(percentile(&v, 50.0))
}
