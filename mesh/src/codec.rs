//! The job protocol's frame codec: one CBOR byte string per request or response (the same bytes
//! libp2p's CBOR codec puts on the wire for [`Bytes`]), read by its declared length.
//!
//! The header of a CBOR byte string states its length, so a frame over the cap is refused after
//! at most 9 bytes instead of being read up to the cap first; a frame that is not a byte string
//! is refused at its first byte. Short frames (the stream ends early) are errors too.

use std::io;

use libp2p::StreamProtocol;
use libp2p::futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::request_response;
use pocmesh_protocol::Bytes;

/// Reads and writes job-protocol frames of at most `max` payload bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameCodec {
    max: u64,
}

impl FrameCodec {
    pub(crate) fn new(max: u64) -> Self {
        FrameCodec { max }
    }
}

/// CBOR major type 2 (byte string).
const BYTE_STRING: u8 = 0b010;

fn invalid(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

/// Reads one frame: the header, the declared length checked against `max`, then the payload.
pub(crate) async fn read_frame<T: AsyncRead + Unpin + Send>(
    io: &mut T,
    max: u64,
) -> io::Result<Vec<u8>> {
    let mut first = [0u8; 1];
    io.read_exact(&mut first).await?;
    let (major, info) = (first[0] >> 5, first[0] & 0x1f);
    if major != BYTE_STRING {
        return Err(invalid(format!(
            "frame is not a CBOR byte string (major type {major})"
        )));
    }
    let len = match info {
        0..=23 => u64::from(info),
        24..=27 => {
            let n = 1usize << (info - 24);
            let mut buf = [0u8; 8];
            io.read_exact(&mut buf[8 - n..]).await?;
            u64::from_be_bytes(buf)
        }
        _ => {
            return Err(invalid(format!(
                "frame length form {info} is not accepted (definite lengths only)"
            )));
        }
    };
    if len > max {
        return Err(invalid(format!(
            "frame declares {len} bytes, over the {max}-byte cap"
        )));
    }
    let mut payload = Vec::with_capacity(len as usize);
    io.take(len).read_to_end(&mut payload).await?;
    if payload.len() as u64 != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("frame ended after {} of {len} bytes", payload.len()),
        ));
    }
    Ok(payload)
}

/// The CBOR header of a byte string of `len` bytes (shortest form).
fn header(len: u64) -> Vec<u8> {
    let major = BYTE_STRING << 5;
    match len {
        0..=23 => vec![major | len as u8],
        24..=0xff => vec![major | 24, len as u8],
        0x100..=0xffff => {
            let mut h = vec![major | 25];
            h.extend_from_slice(&(len as u16).to_be_bytes());
            h
        }
        0x1_0000..=0xffff_ffff => {
            let mut h = vec![major | 26];
            h.extend_from_slice(&(len as u32).to_be_bytes());
            h
        }
        _ => {
            let mut h = vec![major | 27];
            h.extend_from_slice(&len.to_be_bytes());
            h
        }
    }
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(
    io: &mut T,
    payload: &[u8],
    max: u64,
) -> io::Result<()> {
    if payload.len() as u64 > max {
        return Err(invalid(format!(
            "frame of {} bytes is over the {max}-byte cap",
            payload.len()
        )));
    }
    io.write_all(&header(payload.len() as u64)).await?;
    io.write_all(payload).await?;
    io.close().await
}

impl request_response::Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = Bytes;
    type Response = Bytes;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Bytes>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.max).await.map(Bytes)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Bytes>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.max).await.map(Bytes)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Bytes,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &req.0, self.max).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Bytes,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &res.0, self.max).await
    }
}

#[cfg(test)]
mod tests {
    use libp2p::futures::executor::block_on;
    use libp2p::futures::io::Cursor;

    use super::*;

    fn frame(len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        block_on(write_frame(
            &mut Cursor::new(&mut out),
            &vec![7u8; len],
            u64::MAX,
        ))
        .expect("write");
        out
    }

    #[test]
    fn frames_are_cbor_byte_strings_read_back_at_every_header_size() {
        for len in [0usize, 1, 23, 24, 255, 256, 65_535, 65_536, 300_000] {
            let bytes = frame(len);
            // The same bytes a CBOR encoder writes for a byte string.
            let cbor: serde_bytes::ByteBuf =
                serde_cbor::from_slice(&bytes).expect("valid CBOR byte string");
            assert_eq!(cbor.len(), len);
            let back = block_on(read_frame(&mut Cursor::new(bytes), 1 << 20)).expect("read");
            assert_eq!(back.len(), len);
        }
    }

    #[test]
    fn a_frame_over_the_cap_is_refused_from_its_header_without_reading_the_rest() {
        // A header declaring 9 MiB, followed by far less: refused before any payload is read.
        let mut bytes = header(9 * 1024 * 1024);
        bytes.extend_from_slice(&[0u8; 100]);
        let mut cursor = Cursor::new(bytes);
        let e = block_on(read_frame(&mut cursor, 8 * 1024 * 1024)).expect_err("over the cap");
        assert!(e.to_string().contains("over the"), "{e}");
        assert_eq!(cursor.position(), 5, "only the header was read");
        // Not a byte string: refused at the first byte.
        let mut cursor = Cursor::new(vec![0xa1, 0x01, 0x02]);
        let e = block_on(read_frame(&mut cursor, 1024)).expect_err("a map");
        assert!(e.to_string().contains("major type 5"), "{e}");
        assert_eq!(cursor.position(), 1);
        // Cut short.
        let mut short = frame(1000);
        short.truncate(500);
        let e = block_on(read_frame(&mut Cursor::new(short), 4096)).expect_err("short");
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        // Indefinite lengths are not accepted.
        let e = block_on(read_frame(
            &mut Cursor::new(vec![0x5f, 0x41, 0x00, 0xff]),
            1024,
        ))
        .expect_err("indefinite");
        assert!(e.to_string().contains("definite"), "{e}");
        // And the writer refuses to send what a reader would refuse.
        let mut out = Vec::new();
        assert!(block_on(write_frame(&mut Cursor::new(&mut out), &[0u8; 10], 5)).is_err());
    }
}
