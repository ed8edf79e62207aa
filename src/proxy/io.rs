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

/// Reads what a readable socket holds now, appending to `buf`, without waiting and without
/// an operation in flight: the buffer is never pinned by the driver. `Ok(0)` is the end of
/// the stream; `WouldBlock` means the readiness was stale.
pub fn read_ready(stream: &TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let spare = buf.spare_capacity_mut();
    // SAFETY: recv writes at most `spare.len()` bytes into the vector's spare capacity, and
    // the descriptor is owned by `stream` for the whole call.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            spare.as_mut_ptr().cast(),
            spare.len(),
            libc::MSG_DONTWAIT,
        )
    };
    let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    // SAFETY: recv initialised the first `n` bytes of the spare capacity.
    unsafe { buf.set_len(buf.len() + n) };
    Ok(n)
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
