//! PLACEHOLDER: replaced by the codec from the `chunked` branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkedError {
    BadSize,
    SizeOverflow,
    BadLineEnding,
    LineTooLong,
    TrailersTooLarge,
    BadTrailer,
}
#[derive(Default)]
pub struct ChunkedDecoder {
    done: bool,
}
pub struct Progress {
    pub consumed: usize,
    pub done: bool,
}
impl ChunkedDecoder {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn decode(
        &mut self,
        _input: &[u8],
        _data: &mut impl FnMut(std::ops::Range<usize>),
    ) -> Result<Progress, ChunkedError> {
        Err(ChunkedError::BadSize)
    }
    pub fn is_done(&self) -> bool {
        self.done
    }
}
pub fn encode_chunk_header(len: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(format!("{len:x}\r\n").as_bytes());
}
pub const CHUNK_TRAILER_CRLF: &[u8] = b"\r\n";
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";
