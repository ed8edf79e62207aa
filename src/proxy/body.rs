//! Where a request body ends, tracked as bytes stream through (RFC 9112 §6.3). The bytes are
//! forwarded as they arrived (a chunked body stays chunked, validated), so the body is never
//! buffered whole.

use crate::http::chunked::ChunkedDecoder;
use crate::http::request::BodyFraming;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// 413: more body than `max_body_bytes`.
    TooLarge,
    /// 400: broken chunked framing.
    Malformed,
}

impl BodyError {
    pub fn status(self) -> u16 {
        match self {
            BodyError::TooLarge => 413,
            BodyError::Malformed => 400,
        }
    }
}

pub struct RequestBody {
    framing: BodyFraming,
    remaining: u64,
    decoder: ChunkedDecoder,
    received: u64,
    limit: u64,
    done: bool,
    /// Wire bytes of the body walked over so far.
    consumed: u64,
}

impl RequestBody {
    pub fn new(framing: BodyFraming, limit: u64) -> RequestBody {
        let remaining = match framing {
            BodyFraming::Length(n) => n,
            _ => 0,
        };
        RequestBody {
            framing,
            remaining,
            decoder: ChunkedDecoder::new(),
            received: 0,
            limit,
            done: framing == BodyFraming::None,
            consumed: 0,
        }
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Walks over `input`, the next bytes from the client, and returns how many of them belong
    /// to this body. Fewer than `input.len()` only once the body is done: the rest is the next
    /// pipelined request.
    pub fn advance(&mut self, input: &[u8]) -> Result<usize, BodyError> {
        let n = self.walk(input)?;
        self.consumed += n as u64;
        Ok(n)
    }

    fn walk(&mut self, input: &[u8]) -> Result<usize, BodyError> {
        if self.done {
            return Ok(0);
        }
        match self.framing {
            BodyFraming::None => Ok(0),
            BodyFraming::Length(_) => {
                let take = self.remaining.min(input.len() as u64);
                self.remaining -= take;
                self.done = self.remaining == 0;
                Ok(take as usize)
            }
            BodyFraming::Chunked => {
                let mut data = 0u64;
                let progress = self
                    .decoder
                    .decode(input, &mut |r: std::ops::Range<usize>| {
                        data += r.len() as u64
                    })
                    .map_err(|_| BodyError::Malformed)?;
                self.received += data;
                if self.received > self.limit {
                    return Err(BodyError::TooLarge);
                }
                self.done = progress.done;
                Ok(progress.consumed)
            }
        }
    }
}
