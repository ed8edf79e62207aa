//! A response body on its way from upstream to client, re-framed when the two sides differ:
//! passed through (Content-Length, chunked to a 1.1 client), de-chunked (for a 1.0 client) or
//! chunked (a close-delimited body to a 1.1 client).

use std::time::Duration;

use monoio::net::TcpStream;

use super::attempt::TryClock;
use super::client::Client;
use super::head::ClientFraming;
use super::io::{read_more, IoError};
use crate::http::chunked::{self, ChunkedDecoder};
use crate::http::response::ResponseFraming;

/// A body tail up to this size rides in the same write as the head.
const COALESCE_LIMIT: usize = 16 * 1024;
/// Large bodies are relayed through a buffer grown to this size: four times fewer reads and
/// writes than the default buffer for a 64 KiB response.
const RELAY_BUFFER: usize = 64 * 1024;

/// Moves a response body from upstream to client, re-framing it when the two sides differ.
pub struct Relay<'a> {
    pub client: &'a mut Client,
    pub upstream: &'a mut TcpStream,
    pub ubuf: &'a mut Vec<u8>,
    /// Holds the response head on entry; it goes out with the first body bytes.
    pub out: &'a mut Vec<u8>,
    pub read_timeout: Duration,
    /// Cuts the reads short at the try's `per_try_timeout`; writes to the client are the
    /// client's business, bounded by its `send_timeout`.
    pub clock: TryClock,
}

/// The body was relayed; `true` when the upstream connection ended cleanly at the response's
/// end and may carry another request.
pub type RelayResult = Result<bool, RelayError>;

/// Which side broke the relay. Only the upstream's failures count against its target: a
/// client that goes away mid-download says nothing about the target's health.
#[derive(Debug)]
pub enum RelayError {
    /// Reading the body failed, timed out, or found it malformed.
    Upstream(IoError),
    /// Writing to the client failed or timed out.
    Client,
}

impl Relay<'_> {
    pub async fn run(
        mut self,
        start: usize,
        from: ResponseFraming,
        to: ClientFraming,
    ) -> RelayResult {
        match from {
            ResponseFraming::None => {
                self.flush().await?;
                Ok(self.ubuf.len() == start)
            }
            ResponseFraming::Length(n) => self.length(start, n).await,
            ResponseFraming::Chunked => self.chunked(start, to == ClientFraming::Chunked).await,
            ResponseFraming::Close => {
                self.until_close(start, to == ClientFraming::ChunkEach)
                    .await
            }
        }
    }

    async fn flush(&mut self) -> Result<(), RelayError> {
        self.client
            .send_all(self.out)
            .await
            .map_err(|_| RelayError::Client)?;
        self.out.clear();
        Ok(())
    }

    /// Sends what is pending in `out` followed by `ubuf[range]`, in one write when small.
    async fn send(&mut self, range: std::ops::Range<usize>) -> Result<(), RelayError> {
        if self.out.len() + range.len() <= COALESCE_LIMIT {
            self.out.extend_from_slice(&self.ubuf[range]);
            return self.flush().await;
        }
        if !self.out.is_empty() {
            self.flush().await?;
        }
        self.client
            .send(self.ubuf, range)
            .await
            .map_err(|_| RelayError::Client)
    }

    /// Reads the next piece of body into `ubuf`; `expected` (when known) lets the buffer grow
    /// for a large body.
    async fn refill(&mut self, expected: u64) -> Result<usize, RelayError> {
        self.ubuf.clear();
        if expected > self.ubuf.capacity() as u64 && self.ubuf.capacity() < RELAY_BUFFER {
            self.ubuf.reserve_exact(RELAY_BUFFER);
        }
        read_more(
            self.upstream,
            self.ubuf,
            self.clock.limit(self.read_timeout),
        )
        .await
        .map_err(RelayError::Upstream)
    }

    async fn length(&mut self, start: usize, total: u64) -> RelayResult {
        let mut remaining = total;
        let mut pos = start;
        let mut clean = true;
        loop {
            let avail = self.ubuf.len() - pos;
            let take = remaining.min(avail as u64) as usize;
            // Bytes past the declared length mean the upstream is confused: don't reuse it.
            clean &= take == avail;
            self.send(pos..pos + take).await?;
            remaining -= take as u64;
            if remaining == 0 {
                return Ok(clean);
            }
            self.refill(remaining).await?;
            pos = 0;
        }
    }

    async fn chunked(&mut self, start: usize, pass_through: bool) -> RelayResult {
        let mut decoder = ChunkedDecoder::new();
        let mut pos = start;
        loop {
            let input = &self.ubuf[pos..];
            let progress = if pass_through {
                let p = decoder.decode(input, &mut |_| {}).map_err(|_| bad_body())?;
                self.send(pos..pos + p.consumed).await?;
                p
            } else {
                // De-chunking for a 1.0 client: only the data goes out.
                let out = &mut *self.out;
                let p = decoder
                    .decode(input, &mut |r: std::ops::Range<usize>| {
                        out.extend_from_slice(&input[r])
                    })
                    .map_err(|_| bad_body())?;
                self.flush().await?;
                p
            };
            if progress.done {
                return Ok(pos + progress.consumed == self.ubuf.len());
            }
            self.refill(RELAY_BUFFER as u64).await?;
            pos = 0;
        }
    }

    async fn until_close(&mut self, start: usize, chunk_each: bool) -> RelayResult {
        let mut pos = start;
        loop {
            let n = self.ubuf.len() - pos;
            if n > 0 {
                if chunk_each {
                    chunked::encode_chunk_header(n, self.out);
                    self.send(pos..pos + n).await?;
                    self.out.extend_from_slice(chunked::CHUNK_TRAILER_CRLF);
                } else {
                    self.send(pos..pos + n).await?;
                }
            }
            match self.refill(RELAY_BUFFER as u64).await {
                Ok(_) => pos = 0,
                Err(RelayError::Upstream(IoError::Eof)) => break,
                Err(e) => return Err(e),
            }
        }
        if chunk_each {
            self.out.extend_from_slice(chunked::LAST_CHUNK);
        }
        self.flush().await?;
        Ok(false)
    }
}

fn bad_body() -> RelayError {
    RelayError::Upstream(IoError::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        "malformed chunked body from upstream",
    )))
}
