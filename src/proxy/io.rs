//! Reads and writes with deadlines over monoio's owned buffers.
//!
//! monoio takes buffers by value; these helpers take them out of the `&mut Vec` and put them
//! back, so callers keep using one buffer per direction. A timeout drops the in-flight
//! operation together with the buffer: the caller must then close that connection.

use std::io;
use std::mem;
use std::ops::Range;
use std::time::Duration;

use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

#[derive(Debug)]
pub enum IoError {
    Eof,
    Timeout,
    Io(io::Error),
}

impl IoError {
    /// How an upstream failure mid-response is counted.
    pub fn kind(&self) -> super::UpstreamErrorKind {
        match self {
            IoError::Timeout => super::UpstreamErrorKind::Timeout,
            IoError::Io(e) if e.kind() == io::ErrorKind::InvalidData => {
                super::UpstreamErrorKind::BadResponse
            }
            IoError::Eof | IoError::Io(_) => super::UpstreamErrorKind::Reset,
        }
    }
}

/// Reads once, appending to `buf`. Grows `buf` when it is full.
pub async fn read_more(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    limit: Duration,
) -> Result<usize, IoError> {
    if buf.capacity() - buf.len() < 512 {
        buf.reserve(crate::shard::BUFFER_SIZE);
    }
    let (len, cap) = (buf.len(), buf.capacity());
    let owned = mem::take(buf);
    match monoio::time::timeout(limit, stream.read(owned.slice_mut(len..cap))).await {
        Ok((res, slice)) => {
            *buf = slice.into_inner();
            match res {
                Ok(0) => Err(IoError::Eof),
                Ok(n) => Ok(n),
                Err(e) => Err(IoError::Io(e)),
            }
        }
        Err(_) => Err(IoError::Timeout),
    }
}

/// Writes `buf[range]` completely.
pub async fn write_range(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    range: Range<usize>,
    limit: Duration,
) -> Result<(), IoError> {
    if range.is_empty() {
        return Ok(());
    }
    let owned = mem::take(buf);
    match monoio::time::timeout(limit, stream.write_all(owned.slice(range))).await {
        Ok((res, slice)) => {
            *buf = slice.into_inner();
            res.map(drop).map_err(IoError::Io)
        }
        Err(_) => Err(IoError::Timeout),
    }
}

pub async fn write_all(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    limit: Duration,
) -> Result<(), IoError> {
    let len = buf.len();
    write_range(stream, buf, 0..len, limit).await
}
