//! The chunked transfer coding (RFC 9112 §7.1): an incremental decoder for
//! bodies arriving from a client or an upstream, and the few bytes an encoder
//! needs to frame a body it forwards.
//!
//! The decoder is a byte-level state machine that never buffers: it is fed
//! whatever the socket produced, keeps its position between calls, and reports
//! chunk data as ranges of the caller's buffer. That serves both ways the proxy
//! moves a chunked body:
//!
//! * pass-through: forward exactly the `consumed` bytes, which have been
//!   validated, so the next hop sees the same framing we did;
//! * de-chunking: forward only the data ranges.
//!
//! It is stricter than RFC 9112 §2.2 requires of a recipient (bare LF, bare
//! CR and whitespace before CRLF are all rejected) because a proxy that reads
//! framing more leniently than the server behind it is a request smuggling
//! vector: whatever we accept, every compliant next hop must read identically.

use std::fmt;
use std::ops::Range;

/// Longest chunk-size line we accept, counting every byte from the first size
/// digit through the terminating CRLF, extensions included.
///
/// RFC 9112 §7.1.1 lets a server limit extension length; 4 KiB is far beyond
/// anything a real client sends and bounds the work an attacker can make us do
/// on bytes that carry no data.
pub const MAX_SIZE_LINE: usize = 4096;

/// Largest trailer section we accept, counting every byte after the
/// last-chunk line through the CRLF that ends the message.
///
/// Trailers are header fields (RFC 9112 §7.1.2), so they get a budget of the
/// same order as a request head; 16 KiB keeps a never-ending trailer from
/// holding a connection open.
pub const MAX_TRAILER_SECTION: usize = 16 * 1024;

/// CRLF that follows the data of every chunk (RFC 9112 §7.1).
pub const CHUNK_TRAILER_CRLF: &[u8] = b"\r\n";

/// A last-chunk with no extensions, followed by an empty trailer section
/// (RFC 9112 §7.1): the whole end of a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Why a chunked body was rejected.
///
/// Every variant is a framing error the body cannot recover from: the
/// connection must be closed after it. For a request body it answers
/// `400 Bad Request` (except where noted) if nothing has reached the client yet;
/// for a response body from an upstream it answers `502 Bad Gateway` under the
/// same condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkedError {
    /// A chunk-size line without hex digits, with a character that belongs
    /// neither to the size nor to an extension, whitespace not followed by an
    /// extension, or a control character inside an extension. `400`.
    BadSize,
    /// A chunk size that does not fit in 64 bits. `400` (it could never be
    /// delivered, so it is a malformed message rather than a large one).
    SizeOverflow,
    /// A line not ended by CRLF: bare CR, bare LF, or chunk data not followed
    /// by exactly CRLF. `400`.
    BadLineEnding,
    /// A chunk-size line (extensions included) longer than
    /// [`MAX_SIZE_LINE`]. `400`.
    LineTooLong,
    /// A trailer section longer than [`MAX_TRAILER_SECTION`].
    /// `431 Request Header Fields Too Large`.
    TrailersTooLarge,
    /// A trailer line that is not `token ":" value`, or a value with a control
    /// character. `400`.
    BadTrailer,
}

impl fmt::Display for ChunkedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChunkedError::BadSize => "invalid chunk-size line",
            ChunkedError::SizeOverflow => "chunk size overflows 64 bits",
            ChunkedError::BadLineEnding => "chunked body line not ended by CRLF",
            ChunkedError::LineTooLong => "chunk-size line too long",
            ChunkedError::TrailersTooLarge => "chunked trailer section too large",
            ChunkedError::BadTrailer => "invalid chunked trailer field",
        })
    }
}

impl std::error::Error for ChunkedError {}

/// What one [`ChunkedDecoder::decode`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of the input that belong to this body and were validated. Unless
    /// `done`, this is always the whole input.
    pub consumed: usize,
    /// The body ended within (or before) this input: bytes past `consumed`
    /// belong to the next message on the connection.
    pub done: bool,
}

/// Where the decoder is in the grammar of RFC 9112 §7.1:
///
/// ```text
/// chunked-body   = *chunk last-chunk trailer-section CRLF
/// chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
/// chunk-size     = 1*HEXDIG
/// last-chunk     = 1*("0") [ chunk-ext ] CRLF
/// chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
/// trailer-section = *( field-line CRLF )
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first digit of a chunk-size: at least one is required.
    SizeFirst,
    /// Inside the chunk-size digits.
    Size,
    /// Whitespace after the size. In the grammar BWS only precedes the `;` of
    /// an extension (§7.1.1), so nothing but more whitespace or `;` may follow.
    SizeBws,
    /// Inside chunk-ext, which we skip up to the CR (§7.1.1: a recipient
    /// ignores extensions it does not understand, and we understand none).
    Ext,
    /// The CR of the size line has been read; its LF must follow.
    SizeLf,
    /// Inside chunk-data; `size` bytes remain.
    Data,
    /// chunk-data is complete; its CR must follow.
    DataCr,
    /// The CR after chunk-data has been read; its LF must follow.
    DataLf,
    /// At the start of a line of the trailer section (§7.1.2): either a field
    /// line or the CRLF that ends the body.
    LineStart,
    /// Inside a trailer field name.
    FieldName,
    /// Inside a trailer field value, after the colon.
    FieldValue,
    /// The CR ending a trailer field line has been read; its LF must follow.
    FieldLf,
    /// The CR of the final empty line has been read; its LF ends the body.
    EndLf,
    /// The body is complete.
    Done,
    /// The body was rejected; every later call reports the same error.
    Failed(ChunkedError),
}

/// Incremental decoder for one chunked message body (RFC 9112 §7.1).
///
/// Use one per body: after `done` it consumes nothing more.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    /// The chunk-size being read, then the chunk-data bytes still to come.
    size: u64,
    /// Bytes the current size line or trailer section may still use before it
    /// hits its limit. One counter serves both because they never overlap.
    budget: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    /// A decoder positioned before the first chunk-size.
    pub const fn new() -> Self {
        ChunkedDecoder {
            state: State::SizeFirst,
            size: 0,
            budget: MAX_SIZE_LINE,
        }
    }

    /// Whether the whole body, trailer section included, has been consumed.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes as much of `input` as belongs to this body and reports every
    /// run of chunk-data in it, in order, as a range of `input` passed to
    /// `data`. Ranges are never empty.
    ///
    /// Unless the body ends inside `input`, all of it is consumed, even when
    /// it stops in the middle of a size line: the decoder keeps its own state,
    /// so the caller never presents a consumed byte again. When the body ends,
    /// consumption stops right after the CRLF that closes the trailer section
    /// and `done` is set; what follows is the next pipelined message.
    ///
    /// An error is final: this and every later call return it. Data ranges
    /// already reported in the failing call were valid chunk-data, but the
    /// body as a whole is not.
    pub fn decode(
        &mut self,
        input: &[u8],
        data: &mut impl FnMut(Range<usize>),
    ) -> Result<Progress, ChunkedError> {
        let mut pos = 0;
        while let Some(&byte) = input.get(pos) {
            match self.state {
                State::Data => {
                    // Chunk data is the bulk of a body, so it is reported in
                    // one range per call instead of stepping byte by byte.
                    let available = input.len() - pos;
                    let take = usize::try_from(self.size).map_or(available, |r| r.min(available));
                    data(pos..pos + take);
                    pos += take;
                    // `take` is at most `size`, so this cannot underflow.
                    self.size -= take as u64;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                }
                State::Done => break,
                State::Failed(err) => return Err(err),
                state => {
                    pos += 1;
                    match self.step(state, byte) {
                        Ok(next) => self.state = next,
                        Err(err) => {
                            self.state = State::Failed(err);
                            return Err(err);
                        }
                    }
                }
            }
        }
        match self.state {
            State::Failed(err) => Err(err),
            state => Ok(Progress {
                consumed: pos,
                done: state == State::Done,
            }),
        }
    }

    /// Advances over one byte outside chunk-data.
    fn step(&mut self, state: State, byte: u8) -> Result<State, ChunkedError> {
        match state {
            State::SizeFirst | State::Size | State::SizeBws | State::Ext | State::SizeLf => {
                self.budget = self
                    .budget
                    .checked_sub(1)
                    .ok_or(ChunkedError::LineTooLong)?;
                self.step_size_line(state, byte)
            }
            State::DataCr => match byte {
                b'\r' => Ok(State::DataLf),
                _ => Err(ChunkedError::BadLineEnding),
            },
            State::DataLf => match byte {
                b'\n' => {
                    self.size = 0;
                    self.budget = MAX_SIZE_LINE;
                    Ok(State::SizeFirst)
                }
                _ => Err(ChunkedError::BadLineEnding),
            },
            State::LineStart
            | State::FieldName
            | State::FieldValue
            | State::FieldLf
            | State::EndLf => {
                self.budget = self
                    .budget
                    .checked_sub(1)
                    .ok_or(ChunkedError::TrailersTooLarge)?;
                step_trailer(state, byte)
            }
            // `decode` handles these without stepping; staying put is the
            // only answer that cannot corrupt the framing.
            State::Data | State::Done | State::Failed(_) => Ok(state),
        }
    }

    /// chunk-size [ chunk-ext ] CRLF (RFC 9112 §7.1, §7.1.1).
    fn step_size_line(&mut self, state: State, byte: u8) -> Result<State, ChunkedError> {
        match state {
            State::SizeFirst => match hex_value(byte) {
                Some(digit) => {
                    self.size = u64::from(digit);
                    Ok(State::Size)
                }
                None => Err(ChunkedError::BadSize),
            },
            State::Size => {
                if let Some(digit) = hex_value(byte) {
                    // Leading zeros keep `size` at 0 and so never overflow;
                    // the 17th significant digit does.
                    if self.size > u64::MAX >> 4 {
                        return Err(ChunkedError::SizeOverflow);
                    }
                    self.size = self.size << 4 | u64::from(digit);
                    return Ok(State::Size);
                }
                match byte {
                    b' ' | b'\t' => Ok(State::SizeBws),
                    b';' => Ok(State::Ext),
                    b'\r' => Ok(State::SizeLf),
                    b'\n' => Err(ChunkedError::BadLineEnding),
                    _ => Err(ChunkedError::BadSize),
                }
            }
            // Whitespace before CRLF is outside the grammar; hyper tolerates
            // it, but a server that does not would see a different body.
            State::SizeBws => match byte {
                b' ' | b'\t' => Ok(State::SizeBws),
                b';' => Ok(State::Ext),
                _ => Err(ChunkedError::BadSize),
            },
            // The extension grammar is not checked beyond its characters:
            // names, values and quoted-strings (§7.1.1, RFC 9110 §5.6.4) can
            // hold neither CR, LF nor other controls, so the first CR is the
            // end of the line for every reader that honours the grammar.
            State::Ext => match byte {
                b'\r' => Ok(State::SizeLf),
                // A bare LF is where lenient and strict parsers disagree about
                // the end of the line: the classic smuggling gap.
                b'\n' => Err(ChunkedError::BadLineEnding),
                b'\t' => Ok(State::Ext),
                _ if is_ctl(byte) => Err(ChunkedError::BadSize),
                _ => Ok(State::Ext),
            },
            State::SizeLf => match byte {
                b'\n' if self.size == 0 => {
                    // last-chunk: the trailer section starts here (§7.1.2).
                    self.budget = MAX_TRAILER_SECTION;
                    Ok(State::LineStart)
                }
                b'\n' => Ok(State::Data),
                _ => Err(ChunkedError::BadLineEnding),
            },
            _ => Ok(state),
        }
    }
}

/// trailer-section CRLF (RFC 9112 §7.1.2), each field line checked loosely
/// against `field-name ":" OWS field-value OWS` (RFC 9112 §5).
fn step_trailer(state: State, byte: u8) -> Result<State, ChunkedError> {
    match state {
        State::LineStart => match byte {
            b'\r' => Ok(State::EndLf),
            b'\n' => Err(ChunkedError::BadLineEnding),
            // A leading SP or HTAB would be obs-fold, which RFC 9112 §5.2
            // lets a recipient reject; an empty name is never valid.
            _ if is_tchar(byte) => Ok(State::FieldName),
            _ => Err(ChunkedError::BadTrailer),
        },
        State::FieldName => match byte {
            b':' => Ok(State::FieldValue),
            // Includes whitespace before the colon, which RFC 9112 §5.1 says
            // a server MUST reject, and lines without any colon.
            _ if is_tchar(byte) => Ok(State::FieldName),
            _ => Err(ChunkedError::BadTrailer),
        },
        State::FieldValue => match byte {
            b'\r' => Ok(State::FieldLf),
            b'\n' => Err(ChunkedError::BadLineEnding),
            b'\t' => Ok(State::FieldValue),
            // RFC 9110 §5.5: no CTL in a field value; obs-text is allowed.
            _ if is_ctl(byte) => Err(ChunkedError::BadTrailer),
            _ => Ok(State::FieldValue),
        },
        State::FieldLf => match byte {
            b'\n' => Ok(State::LineStart),
            _ => Err(ChunkedError::BadLineEnding),
        },
        State::EndLf => match byte {
            b'\n' => Ok(State::Done),
            _ => Err(ChunkedError::BadLineEnding),
        },
        _ => Ok(state),
    }
}

/// HEXDIG (RFC 5234 B.1), which is case-insensitive like every ABNF literal.
fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// CTL (RFC 5234 B.1).
fn is_ctl(byte: u8) -> bool {
    byte < 0x20 || byte == 0x7f
}

/// tchar (RFC 9110 §5.6.2): the characters of a token, hence of a field name.
fn is_tchar(byte: u8) -> bool {
    TCHAR[usize::from(byte)]
}

static TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < table.len() {
        let b = i as u8;
        table[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        i += 1;
    }
    table
};

/// Appends the chunk-size line for a chunk of `len` bytes (`"1a2b\r\n"`) to
/// `out`; the chunk's data and then [`CHUNK_TRAILER_CRLF`] follow it.
///
/// A `len` of 0 writes a last-chunk line (RFC 9112 §7.1), which ends the body:
/// use it only to start a trailer section, never for an empty read, and follow
/// it with the trailer fields and a final CRLF. [`LAST_CHUNK`] covers the usual
/// case of no trailers.
pub fn encode_chunk_header(len: usize, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    // Enough for the hex digits of any usize (16 on 64-bit targets) plus CRLF.
    const CAP: usize = 2 * std::mem::size_of::<usize>() + 2;
    let mut buf = [0u8; CAP];
    let mut start = CAP - 2;
    buf[CAP - 2] = b'\r';
    buf[CAP - 1] = b'\n';
    let mut rest = len;
    loop {
        start -= 1;
        buf[start] = HEX[rest & 0xf];
        rest >>= 4;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[start..]);
}
