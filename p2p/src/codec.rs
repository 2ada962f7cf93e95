//! Wire codec of the sync protocol: one protobuf message per stream direction,
//! framed as a big-endian `u32` length followed by that many bytes.
//!
//! Frames longer than the configured cap are refused before anything is
//! allocated. An oversized or undecodable response is an
//! `io::ErrorKind::InvalidData` error, which libp2p reports as an outbound
//! failure. An oversized or undecodable request is read as
//! [`InboundRequest::Malformed`] instead (libp2p would drop a failed read
//! silently), so that the service can answer it with an error and count a
//! strike against the sender.

use std::io;

use async_trait::async_trait;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use prost::Message;

/// Protocol name of the sync request-response protocol.
pub const SYNC_PROTOCOL: StreamProtocol = StreamProtocol::new("/bizra/sync/1");

/// A sync request as read from, or written to, the wire.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum InboundRequest {
    Request(bizra_proto::SyncRequest),
    /// A frame that was too large or not a `SyncRequest`; never written.
    Malformed(String),
}

/// Length-prefixed protobuf codec for sync requests and responses.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SyncCodec {
    max_frame: usize,
}

impl SyncCodec {
    /// A codec that refuses frames (payload, without the 4-byte prefix) above
    /// `max_frame` bytes.
    pub(crate) fn new(max_frame: usize) -> Self {
        Self {
            max_frame: max_frame.min(u32::MAX as usize),
        }
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Reads one length-prefixed frame, refusing lengths above `max`.
pub(crate) async fn read_frame<T>(io: &mut T, max: usize) -> io::Result<Vec<u8>>
where
    T: AsyncRead + Unpin + Send,
{
    let mut len_buf = [0u8; 4];
    io.read_exact(&mut len_buf).await?;
    let len = u32::from_be_bytes(len_buf) as usize;
    if len > max {
        return Err(invalid(format!(
            "sync frame of {len} bytes exceeds the limit of {max} bytes"
        )));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

/// Writes one length-prefixed frame, refusing payloads above `max`.
pub(crate) async fn write_frame<T>(io: &mut T, payload: &[u8], max: usize) -> io::Result<()>
where
    T: AsyncWrite + Unpin + Send,
{
    if payload.len() > max {
        return Err(invalid(format!(
            "refusing to send a sync frame of {} bytes (limit {max})",
            payload.len()
        )));
    }
    let len = u32::try_from(payload.len()).map_err(|_| invalid("frame too large".into()))?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(payload).await?;
    io.flush().await
}

async fn read_message<M, T>(io: &mut T, max: usize) -> io::Result<M>
where
    M: Message + Default,
    T: AsyncRead + Unpin + Send,
{
    let frame = read_frame(io, max).await?;
    M::decode(frame.as_slice()).map_err(|e| invalid(format!("undecodable sync frame: {e}")))
}

async fn write_message<M, T>(io: &mut T, msg: &M, max: usize) -> io::Result<()>
where
    M: Message,
    T: AsyncWrite + Unpin + Send,
{
    write_frame(io, &msg.encode_to_vec(), max).await
}

#[async_trait]
impl libp2p::request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = InboundRequest;
    type Response = bizra_proto::SyncResponse;

    async fn read_request<T>(&mut self, _: &Self::Protocol, io: &mut T) -> io::Result<Self::Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        match read_message(io, self.max_frame).await {
            Ok(req) => Ok(InboundRequest::Request(req)),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => Ok(InboundRequest::Malformed(e.to_string())),
            Err(e) => Err(e),
        }
    }

    async fn read_response<T>(&mut self, _: &Self::Protocol, io: &mut T) -> io::Result<Self::Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_message(io, self.max_frame).await
    }

    async fn write_request<T>(&mut self, _: &Self::Protocol, io: &mut T, req: Self::Request) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match req {
            InboundRequest::Request(req) => write_message(io, &req, self.max_frame).await,
            InboundRequest::Malformed(_) => Err(invalid("refusing to send a malformed request".into())),
        }
    }

    async fn write_response<T>(&mut self, _: &Self::Protocol, io: &mut T, res: Self::Response) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_message(io, &res, self.max_frame).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bizra_proto::{sync_request, sync_response, ChainStatus, StatusRequest};
    use futures::{executor::block_on, io::Cursor};
    use libp2p::request_response::Codec;

    fn status_req() -> InboundRequest {
        InboundRequest::Request(bizra_proto::SyncRequest {
            req: Some(sync_request::Req::Status(StatusRequest {})),
        })
    }

    #[test]
    fn round_trip() {
        block_on(async {
            let mut codec = SyncCodec::new(1024);
            let mut buf = Cursor::new(Vec::new());
            codec
                .write_request(&SYNC_PROTOCOL, &mut buf, status_req())
                .await
                .unwrap();
            let resp = bizra_proto::SyncResponse {
                resp: Some(sync_response::Resp::Status(ChainStatus {
                    chain_id: "c".into(),
                    genesis_hash: vec![1; 32],
                    height: 7,
                    head_hash: vec![2; 32],
                })),
            };
            codec
                .write_response(&SYNC_PROTOCOL, &mut buf, resp.clone())
                .await
                .unwrap();
            buf.set_position(0);
            let got_req = codec.read_request(&SYNC_PROTOCOL, &mut buf).await.unwrap();
            assert_eq!(got_req, status_req());
            let got_resp = codec.read_response(&SYNC_PROTOCOL, &mut buf).await.unwrap();
            assert_eq!(got_resp, resp);
        });
    }

    #[test]
    fn oversized_prefix_is_refused_without_reading_body() {
        block_on(async {
            let mut codec = SyncCodec::new(1024);
            let mut bytes = u32::MAX.to_be_bytes().to_vec();
            bytes.extend_from_slice(&[0u8; 16]);
            let mut io = Cursor::new(bytes);
            match codec.read_request(&SYNC_PROTOCOL, &mut io).await.unwrap() {
                InboundRequest::Malformed(e) => assert!(e.contains("exceeds"), "{e}"),
                other => panic!("expected a malformed request, got {other:?}"),
            }
            assert_eq!(io.position(), 4, "the body must not be read");
            let mut bytes = 1025u32.to_be_bytes().to_vec();
            bytes.extend_from_slice(&[0u8; 1025]);
            let err = codec
                .read_response(&SYNC_PROTOCOL, &mut Cursor::new(bytes))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            assert!(err.to_string().contains("exceeds"), "{err}");
        });
    }

    #[test]
    fn garbage_and_truncated_frames_are_errors() {
        block_on(async {
            let mut codec = SyncCodec::new(1024);
            // A well-framed body that is not a protobuf message.
            let mut bytes = 8u32.to_be_bytes().to_vec();
            bytes.extend_from_slice(&[0xff; 8]);
            let err = codec
                .read_response(&SYNC_PROTOCOL, &mut Cursor::new(bytes.clone()))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            let req = codec
                .read_request(&SYNC_PROTOCOL, &mut Cursor::new(bytes))
                .await
                .unwrap();
            assert!(matches!(req, InboundRequest::Malformed(_)), "{req:?}");

            // A frame cut short.
            let mut bytes = 100u32.to_be_bytes().to_vec();
            bytes.extend_from_slice(&[0u8; 10]);
            let err = codec
                .read_request(&SYNC_PROTOCOL, &mut Cursor::new(bytes))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);

            // A lone partial prefix.
            let err = codec
                .read_request(&SYNC_PROTOCOL, &mut Cursor::new(vec![0u8, 1]))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        });
    }

    #[test]
    fn malformed_request_is_never_written() {
        block_on(async {
            let mut codec = SyncCodec::new(1024);
            let mut buf = Cursor::new(Vec::new());
            let req = InboundRequest::Malformed("x".into());
            assert!(codec.write_request(&SYNC_PROTOCOL, &mut buf, req).await.is_err());
            assert!(buf.get_ref().is_empty());
        });
    }

    #[test]
    fn oversized_write_is_refused() {
        block_on(async {
            let mut codec = SyncCodec::new(8);
            let resp = bizra_proto::SyncResponse {
                resp: Some(sync_response::Resp::Error("x".repeat(100))),
            };
            let mut buf = Cursor::new(Vec::new());
            let err = codec.write_response(&SYNC_PROTOCOL, &mut buf, resp).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            assert!(buf.get_ref().is_empty(), "nothing must be written");
        });
    }
}
