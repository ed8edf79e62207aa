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

use super::token::{hex_value, is_tchar};

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
        if let State::Failed(err) = self.state {
            return Err(err);
        }
        match self.run(input, data) {
            Ok(consumed) => Ok(Progress {
                consumed,
                done: self.state == State::Done,
            }),
            Err(err) => {
                self.state = State::Failed(err);
                Err(err)
            }
        }
    }

    /// The body of `decode`: returns how much of `input` was consumed.
    fn run(
        &mut self,
        input: &[u8],
        data: &mut impl FnMut(Range<usize>),
    ) -> Result<usize, ChunkedError> {
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
                // The common shapes of a size line ("10\r\n") and of the CRLF
                // after data are taken whole when the buffer holds them,
                // rather than one dispatch per byte: 1.6-1.8x the throughput
                // on 16-byte chunks (benches/chunked.rs). Anything else, and
                // every line cut by a read boundary, goes through `step`; the
                // tests feed every body both whole and byte by byte, so the
                // two paths are held to the same answers.
                State::SizeFirst | State::Size if hex_value(byte).is_some() => {
                    while let Some(digit) = input.get(pos).copied().and_then(hex_value) {
                        self.spend(ChunkedError::LineTooLong)?;
                        self.push_digit(digit)?;
                        pos += 1;
                    }
                    self.state = State::Size;
                    if input[pos..].starts_with(b"\r\n") {
                        self.spend(ChunkedError::LineTooLong)?;
                        self.spend(ChunkedError::LineTooLong)?;
                        pos += 2;
                        self.state = self.end_size_line();
                    }
                }
                State::DataCr if input[pos..].starts_with(b"\r\n") => {
                    pos += 2;
                    self.state = self.start_size_line();
                }
                State::Done => break,
                State::Failed(err) => return Err(err),
                state => {
                    pos += 1;
                    self.state = self.step(state, byte)?;
                }
            }
        }
        Ok(pos)
    }

    /// Takes one byte from the budget of the current size line or trailer
    /// section, failing with `limit` once it is spent.
    fn spend(&mut self, limit: ChunkedError) -> Result<(), ChunkedError> {
        self.budget = self.budget.checked_sub(1).ok_or(limit)?;
        Ok(())
    }

    fn push_digit(&mut self, digit: u8) -> Result<(), ChunkedError> {
        // Leading zeros keep `size` at 0 and so never overflow; the 17th
        // significant digit does.
        if self.size > u64::MAX >> 4 {
            return Err(ChunkedError::SizeOverflow);
        }
        self.size = self.size << 4 | u64::from(digit);
        Ok(())
    }

    fn start_size_line(&mut self) -> State {
        self.size = 0;
        self.budget = MAX_SIZE_LINE;
        State::SizeFirst
    }

    /// The state after the CRLF of a size line.
    fn end_size_line(&mut self) -> State {
        if self.size == 0 {
            // last-chunk: the trailer section starts here (§7.1.2).
            self.budget = MAX_TRAILER_SECTION;
            State::LineStart
        } else {
            State::Data
        }
    }

    /// Advances over one byte outside chunk-data.
    fn step(&mut self, state: State, byte: u8) -> Result<State, ChunkedError> {
        match state {
            State::SizeFirst | State::Size | State::SizeBws | State::Ext | State::SizeLf => {
                self.spend(ChunkedError::LineTooLong)?;
                self.step_size_line(state, byte)
            }
            State::DataCr => match byte {
                b'\r' => Ok(State::DataLf),
                _ => Err(ChunkedError::BadLineEnding),
            },
            State::DataLf => match byte {
                b'\n' => Ok(self.start_size_line()),
                _ => Err(ChunkedError::BadLineEnding),
            },
            State::LineStart
            | State::FieldName
            | State::FieldValue
            | State::FieldLf
            | State::EndLf => {
                self.spend(ChunkedError::TrailersTooLarge)?;
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
                    self.push_digit(digit)?;
                    Ok(State::Size)
                }
                None => Err(ChunkedError::BadSize),
            },
            State::Size => {
                if let Some(digit) = hex_value(byte) {
                    self.push_digit(digit)?;
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
                b'\n' => Ok(self.end_size_line()),
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
            _ if is_tchar(byte) => Ok(State::FieldName),
            // Includes whitespace before the colon, which RFC 9112 §5.1 says
            // a server MUST reject, and a line end before any colon.
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

/// CTL (RFC 5234 B.1).
fn is_ctl(byte: u8) -> bool {
    byte < 0x20 || byte == 0x7f
}

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

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes of the next pipelined request, appended after every valid body to
    /// check the decoder stops at the body's end.
    const NEXT: &[u8] = b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n";

    /// Everything feeding a body in some pieces produced.
    #[derive(Debug, PartialEq, Eq)]
    struct Outcome {
        /// Chunk data, as de-chunking forwards it.
        data: Vec<u8>,
        /// Consumed bytes, as pass-through forwards them. Left empty on error,
        /// since how much was consumed before the failing call depends on the
        /// split.
        passed: Vec<u8>,
        done: bool,
        err: Option<ChunkedError>,
    }

    /// Feeds `pieces` in order to a new decoder, checking on every call the
    /// promises `decode` makes, and collects what a proxy would forward.
    fn feed<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
        let mut decoder = ChunkedDecoder::new();
        let mut out = Outcome {
            data: Vec::new(),
            passed: Vec::new(),
            done: false,
            err: None,
        };
        for piece in pieces {
            let mut ranges = Vec::new();
            let result = decoder.decode(piece, &mut |range| ranges.push(range));
            let mut end = 0;
            for (i, range) in ranges.iter().enumerate() {
                assert!(range.start < range.end, "empty range {range:?}");
                // Runs of data are always parted by framing, so one run is
                // one range: adjacent ranges would be a wasted callback.
                assert!(
                    i == 0 || range.start > end,
                    "range {range:?} not after {end}"
                );
                assert!(range.end <= piece.len(), "range {range:?} past input");
                end = range.end;
                out.data.extend_from_slice(&piece[range.clone()]);
            }
            match result {
                Ok(progress) => {
                    assert!(end <= progress.consumed, "data past consumed");
                    assert!(progress.consumed <= piece.len());
                    assert_eq!(progress.done, decoder.is_done());
                    if !progress.done {
                        assert_eq!(progress.consumed, piece.len(), "left input unconsumed");
                    }
                    if out.done {
                        assert_eq!(progress.consumed, 0, "consumed after done");
                    }
                    out.passed.extend_from_slice(&piece[..progress.consumed]);
                    out.done = progress.done;
                }
                Err(err) => {
                    assert!(!decoder.is_done());
                    let mut called = false;
                    assert_eq!(decoder.decode(LAST_CHUNK, &mut |_| called = true), Err(err));
                    assert_eq!(decoder.decode(b"", &mut |_| called = true), Err(err));
                    assert!(!called, "data reported after an error");
                    out.passed.clear();
                    out.err = Some(err);
                    return out;
                }
            }
        }
        out
    }

    fn whole(input: &[u8]) -> Outcome {
        feed([input])
    }

    /// Where to cut `input` in two: everywhere, except in the multi-kilobyte
    /// bodies of the limit tests, where that is quadratic (half a minute in a
    /// debug build) and a sample around the ends, where the limits bite, and
    /// every 61st byte between them gives the same coverage.
    fn cut_points(len: usize) -> impl Iterator<Item = usize> {
        const EDGE: usize = 512;
        (0..=len).filter(move |&at| len <= 2 * EDGE || at < EDGE || len - at < EDGE || at % 61 == 0)
    }

    /// Feeds `input` whole, byte by byte, in every 2-way split of
    /// [`cut_points`] and, for short inputs, every 3-way split, and checks
    /// every way gives `expected`.
    fn check_every_split(input: &[u8], expected: &Outcome) {
        assert_eq!(&whole(input), expected, "whole");
        assert_eq!(&feed(input.chunks(1)), expected, "byte by byte");
        for at in cut_points(input.len()) {
            let (a, b) = input.split_at(at);
            assert_eq!(&feed([a, b]), expected, "split at {at}");
        }
        if input.len() <= 96 {
            for i in 0..=input.len() {
                for j in i..=input.len() {
                    let pieces = [&input[..i], &input[i..j], &input[j..]];
                    assert_eq!(&feed(pieces), expected, "split at {i}, {j}");
                }
            }
        }
    }

    /// `wire` is a complete valid body carrying `expected` data.
    fn check_valid(wire: &[u8], expected: &[u8]) {
        let input = [wire, NEXT].concat();
        let want = Outcome {
            data: expected.to_vec(),
            passed: wire.to_vec(),
            done: true,
            err: None,
        };
        check_every_split(&input, &want);
        // Every strict prefix is an unfinished, valid body.
        for len in cut_points(wire.len()).filter(|&len| len < wire.len()) {
            let got = whole(&wire[..len]);
            assert_eq!((got.done, got.err), (false, None), "prefix of {len}");
            assert_eq!(got.passed, &wire[..len]);
        }
    }

    /// `wire` is rejected with `err`, however it is split.
    fn check_invalid(wire: &[u8], err: ChunkedError) {
        let want = whole(wire);
        assert_eq!(
            want.err,
            Some(err),
            "input {:?}",
            String::from_utf8_lossy(wire)
        );
        check_every_split(wire, &want);
    }

    // ---- valid bodies ----

    #[test]
    fn empty_body() {
        check_valid(b"0\r\n\r\n", b"");
    }

    #[test]
    fn single_and_multiple_chunks() {
        check_valid(b"5\r\nhello\r\n0\r\n\r\n", b"hello");
        check_valid(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world");
        check_valid(b"1\r\na\r\n1\r\nb\r\n1\r\nc\r\n0\r\n\r\n", b"abc");
    }

    #[test]
    fn hex_sizes_are_case_insensitive() {
        check_valid(
            b"a\r\n0123456789\r\nA\r\n9876543210\r\n0\r\n\r\n",
            b"01234567899876543210",
        );
        let data = [b'x'; 0xbeef];
        for size_line in [&b"BEEF\r\n"[..], b"beef\r\n", b"bEeF\r\n"] {
            let wire = [size_line, &data, b"\r\n0\r\n\r\n"].concat();
            let got = whole(&wire);
            assert_eq!((got.data.len(), got.done), (0xbeef, true));
        }
    }

    #[test]
    fn leading_zeros() {
        check_valid(b"0005\r\nhello\r\n000\r\n\r\n", b"hello");
        // Leading zeros are not significant digits, so they never overflow.
        check_valid(
            b"00000000000000000000000005\r\nhello\r\n0\r\n\r\n",
            b"hello",
        );
    }

    #[test]
    fn data_that_looks_like_framing() {
        // The 7 bytes of data are "0\r\n\r\n\r\n": only the size decides.
        check_valid(b"7\r\n0\r\n\r\n\r\n\r\n0\r\n\r\n", b"0\r\n\r\n\r\n");
        check_valid(b"3\r\n\n\r\r\r\n0\r\n\r\n", b"\n\r\r");
    }

    #[test]
    fn large_chunk() {
        let data: Vec<u8> = (0..0x1000u32).map(|i| (i % 251) as u8).collect();
        let wire = [&b"1000\r\n"[..], &data, b"\r\n0\r\n\r\n"].concat();
        check_valid(&wire, &data);
    }

    #[test]
    fn extensions_are_skipped() {
        check_valid(b"5;foo=bar\r\nhello\r\n0;baz\r\n\r\n", b"hello");
        check_valid(b"5;a;b=c;d=\"e\"\r\nhello\r\n0\r\n\r\n", b"hello");
        check_valid(
            b"5;name=\"quoted; \\\"value\\\" =\"\r\nhello\r\n0\r\n\r\n",
            b"hello",
        );
        check_valid(b"5; a = b ;c\r\nhello\r\n0\r\n\r\n", b"hello");
        check_valid(b"5;\r\nhello\r\n0;\r\n\r\n", b"hello");
        // HTAB and obs-text are not controls.
        check_valid(b"5;a=\"\tb\x80\xff\"\r\nhello\r\n0\r\n\r\n", b"hello");
    }

    #[test]
    fn whitespace_before_extension() {
        check_valid(b"5 ;a=b\r\nhello\r\n0\t;x\r\n\r\n", b"hello");
        check_valid(b"5 \t \t;a\r\nhello\r\n0\r\n\r\n", b"hello");
    }

    #[test]
    fn trailers() {
        check_valid(b"0\r\nExpires: never\r\n\r\n", b"");
        check_valid(
            b"3\r\nabc\r\n0\r\nX-Trace:  abc\t\r\nX-Sum:1\r\n\r\n",
            b"abc",
        );
        check_valid(b"0\r\nX-Empty:\r\n\r\n", b"");
        check_valid(b"0\r\nX-Obs: caf\xc3\xa9 \x80\xff\r\n\r\n", b"");
        check_valid(b"0\r\n!#$%&'*+-.^_`|~09AZaz: v\r\n\r\n", b"");
        check_valid(b"0;ext\r\nA: \"quoted: value\"\r\n\r\n", b"");
    }

    // ---- invalid chunk-size lines ----

    #[test]
    fn size_without_digits() {
        check_invalid(b"\r\n", ChunkedError::BadSize);
        check_invalid(b";ext\r\n", ChunkedError::BadSize);
        check_invalid(b" 5\r\n", ChunkedError::BadSize);
        check_invalid(b"\n", ChunkedError::BadSize);
    }

    #[test]
    fn size_with_non_hex() {
        check_invalid(b"x\r\n", ChunkedError::BadSize);
        check_invalid(b"g\r\n", ChunkedError::BadSize);
        check_invalid(b"5g\r\n", ChunkedError::BadSize);
        check_invalid(b"-5\r\n", ChunkedError::BadSize);
        check_invalid(b"+5\r\n", ChunkedError::BadSize);
        check_invalid(b"0x5\r\n", ChunkedError::BadSize);
        check_invalid(b"5,\r\n", ChunkedError::BadSize);
        check_invalid(b"5\x00\r\n", ChunkedError::BadSize);
        // The second chunk's size line is checked like the first.
        check_invalid(b"1\r\na\r\nz\r\n", ChunkedError::BadSize);
    }

    #[test]
    fn whitespace_only_before_extension() {
        check_invalid(b"5 \r\nhello\r\n0\r\n\r\n", ChunkedError::BadSize);
        check_invalid(b"5\t\r\n", ChunkedError::BadSize);
        check_invalid(b"5 x\r\n", ChunkedError::BadSize);
        check_invalid(b"5 5\r\n", ChunkedError::BadSize);
        check_invalid(b"0 \r\n\r\n", ChunkedError::BadSize);
        // Only SP and HTAB count as whitespace.
        check_invalid(b"5\x0b;a\r\n", ChunkedError::BadSize);
        check_invalid(b"5\x0c;a\r\n", ChunkedError::BadSize);
        check_invalid(b"5 \n", ChunkedError::BadSize);
    }

    #[test]
    fn control_characters_in_extensions() {
        for ctl in (0u8..0x20).chain([0x7f]) {
            if matches!(ctl, b'\t' | b'\r' | b'\n') {
                continue;
            }
            check_invalid(
                &[b'5', b';', b'a', ctl, b'\r', b'\n'],
                ChunkedError::BadSize,
            );
            check_invalid(&[b'0', b';', ctl, b'\r', b'\n'], ChunkedError::BadSize);
        }
    }

    #[test]
    fn size_line_needs_crlf() {
        check_invalid(b"5\nhello\r\n", ChunkedError::BadLineEnding);
        check_invalid(b"5\rhello\r\n", ChunkedError::BadLineEnding);
        check_invalid(b"5\r\rhello\r\n", ChunkedError::BadLineEnding);
        check_invalid(b"5;a\nhello\r\n", ChunkedError::BadLineEnding);
        check_invalid(b"5;a\rb\r\n", ChunkedError::BadLineEnding);
        check_invalid(b"5;a\r \r\n", ChunkedError::BadLineEnding);
        check_invalid(b"0\n\r\n", ChunkedError::BadLineEnding);
        check_invalid(b"0;a\n\r\n", ChunkedError::BadLineEnding);
    }

    #[test]
    fn size_overflow() {
        // 16 significant digits fit, whatever leads them.
        let got = whole(b"ffffffffffffffff\r\nabc");
        assert_eq!(
            (got.data, got.done, got.err),
            (b"abc".to_vec(), false, None)
        );
        let got = whole(b"0000FFFFFFFFFFFFFFFF\r\n");
        assert_eq!((got.done, got.err), (false, None));
        check_invalid(b"10000000000000000\r\n", ChunkedError::SizeOverflow);
        check_invalid(b"fffffffffffffffff\r\n", ChunkedError::SizeOverflow);
        check_invalid(b"000f0000000000000003\r\n", ChunkedError::SizeOverflow);
        check_invalid(
            b"1\r\na\r\n10000000000000000\r\n",
            ChunkedError::SizeOverflow,
        );
        // The error comes with the 17th digit, before any line end is seen.
        check_invalid(b"10000000000000000", ChunkedError::SizeOverflow);
    }

    #[test]
    fn huge_chunk_streams_through() {
        let mut decoder = ChunkedDecoder::new();
        let mut seen = 0;
        let head = decoder.decode(b"ffffffffffffffff\r\n", &mut |_| panic!("no data yet"));
        assert_eq!(
            head,
            Ok(Progress {
                consumed: 18,
                done: false
            })
        );
        let block = [0u8; 4096];
        for _ in 0..64 {
            let progress = decoder.decode(&block, &mut |range| seen += range.len());
            assert_eq!(
                progress,
                Ok(Progress {
                    consumed: 4096,
                    done: false
                })
            );
        }
        assert_eq!(seen, 64 * 4096);
    }

    // ---- invalid chunk data framing ----

    #[test]
    fn data_must_be_followed_by_crlf() {
        check_invalid(b"5\r\nhelloX\r\n", ChunkedError::BadLineEnding);
        check_invalid(b"5\r\nhello!\r\n0\r\n\r\n", ChunkedError::BadLineEnding);
        check_invalid(b"5\r\nhello\n0\r\n\r\n", ChunkedError::BadLineEnding);
        check_invalid(b"5\r\nhello\r0\r\n\r\n", ChunkedError::BadLineEnding);
        check_invalid(b"5\r\nhello\r\r\n", ChunkedError::BadLineEnding);
        check_invalid(b"5\r\nhello0\r\n\r\n", ChunkedError::BadLineEnding);
        // A short chunk: the size says 6, so the CR is data and 0 is not CR.
        check_invalid(b"6\r\nhello\r\n0\r\n\r\n", ChunkedError::BadLineEnding);
    }

    #[test]
    fn reported_data_before_an_error_is_kept() {
        let got = whole(b"3\r\nabc\r\n2\r\nde!");
        assert_eq!(got.data, b"abcde");
        assert_eq!(got.err, Some(ChunkedError::BadLineEnding));
    }

    // ---- invalid trailer sections ----

    #[test]
    fn trailer_field_must_be_token_colon_value() {
        check_invalid(b"0\r\nNoColon\r\n\r\n", ChunkedError::BadTrailer);
        check_invalid(b"0\r\n: no-name\r\n\r\n", ChunkedError::BadTrailer);
        check_invalid(b"0\r\nName : v\r\n\r\n", ChunkedError::BadTrailer);
        check_invalid(b"0\r\nName\t: v\r\n\r\n", ChunkedError::BadTrailer);
        check_invalid(b"0\r\nbad name: v\r\n\r\n", ChunkedError::BadTrailer);
        check_invalid(b"0\r\nna(me): v\r\n\r\n", ChunkedError::BadTrailer);
        check_invalid(b"0\r\nna\xc3\xa9: v\r\n\r\n", ChunkedError::BadTrailer);
        check_invalid(b"0\r\nName\r\n\r\n", ChunkedError::BadTrailer);
        check_invalid(b"0\r\nName\n\r\n", ChunkedError::BadTrailer);
        // obs-fold (RFC 9112 §5.2).
        check_invalid(b"0\r\nA: b\r\n folded\r\n\r\n", ChunkedError::BadTrailer);
        check_invalid(b"0\r\nA: b\r\n\tfolded\r\n\r\n", ChunkedError::BadTrailer);
        check_invalid(b"0\r\n \r\n\r\n", ChunkedError::BadTrailer);
    }

    #[test]
    fn trailer_value_without_controls() {
        for ctl in (0u8..0x20).chain([0x7f]) {
            if matches!(ctl, b'\t' | b'\r' | b'\n') {
                continue;
            }
            let wire = [&b"0\r\nA: x"[..], &[ctl], b"y\r\n\r\n"].concat();
            check_invalid(&wire, ChunkedError::BadTrailer);
        }
    }

    #[test]
    fn trailer_lines_need_crlf() {
        check_invalid(b"0\r\nA: b\n\r\n", ChunkedError::BadLineEnding);
        check_invalid(b"0\r\nA: b\rc\r\n\r\n", ChunkedError::BadLineEnding);
        check_invalid(b"0\r\nA: b\r\r\n", ChunkedError::BadLineEnding);
        check_invalid(b"0\r\nA: b\r\n\n", ChunkedError::BadLineEnding);
        check_invalid(b"0\r\n\n", ChunkedError::BadLineEnding);
        check_invalid(b"0\r\n\r\r", ChunkedError::BadLineEnding);
        check_invalid(b"0\r\n\rX", ChunkedError::BadLineEnding);
    }

    // ---- limits ----

    /// A size line of exactly `len` bytes, CRLF included, for a 5-byte chunk.
    fn size_line_of(len: usize) -> Vec<u8> {
        let mut line = b"5;".to_vec();
        line.resize(len - 2, b'e');
        line.extend_from_slice(b"\r\n");
        line
    }

    #[test]
    fn size_line_limit() {
        let at_limit = size_line_of(MAX_SIZE_LINE);
        let wire = [&at_limit[..], b"hello\r\n0\r\n\r\n"].concat();
        check_valid(&wire, b"hello");
        let over = size_line_of(MAX_SIZE_LINE + 1);
        check_invalid(&over, ChunkedError::LineTooLong);
        // An unterminated line fails as soon as it is too long.
        check_invalid(&over[..MAX_SIZE_LINE + 1], ChunkedError::LineTooLong);
        let got = whole(&over[..MAX_SIZE_LINE]);
        assert_eq!((got.done, got.err), (false, None));
    }

    #[test]
    fn size_line_limit_counts_leading_zeros() {
        let mut line = vec![b'0'; MAX_SIZE_LINE - 3];
        line.extend_from_slice(b"5\r\n");
        let wire = [&line[..], b"hello\r\n0\r\n\r\n"].concat();
        check_valid(&wire, b"hello");
        line.insert(0, b'0');
        check_invalid(&line, ChunkedError::LineTooLong);
    }

    #[test]
    fn size_line_limit_is_per_line() {
        let line = size_line_of(MAX_SIZE_LINE);
        let mut last = b"0;".to_vec();
        last.resize(MAX_SIZE_LINE - 2, b'e');
        last.extend_from_slice(b"\r\n");
        let wire = [&line[..], b"hello\r\n", &line, b"world\r\n", &last, b"\r\n"].concat();
        check_valid(&wire, b"helloworld");
        last.insert(2, b'e');
        check_invalid(
            &[&line[..], b"hello\r\n", &last].concat(),
            ChunkedError::LineTooLong,
        );
    }

    /// A trailer section of exactly `len` bytes, final CRLF included, made of
    /// fields of about `field` bytes.
    fn trailers_of(len: usize, field: usize) -> Vec<u8> {
        let mut section = Vec::new();
        while len - section.len() > field + 2 {
            let start = section.len();
            section.extend_from_slice(b"X-F: ");
            section.resize(start + field - 2, b'v');
            section.extend_from_slice(b"\r\n");
        }
        let start = section.len();
        section.extend_from_slice(b"X-L: ");
        section.resize(start + (len - start) - 4, b'v');
        section.extend_from_slice(b"\r\n\r\n");
        assert_eq!(section.len(), len);
        section
    }

    #[test]
    fn trailer_section_limit() {
        for field in [64, MAX_TRAILER_SECTION] {
            let at_limit = trailers_of(MAX_TRAILER_SECTION, field);
            check_valid(&[&b"2\r\nok\r\n0\r\n"[..], &at_limit].concat(), b"ok");
            let over = trailers_of(MAX_TRAILER_SECTION + 1, field);
            check_invalid(
                &[&b"0\r\n"[..], &over].concat(),
                ChunkedError::TrailersTooLarge,
            );
        }
        // An endless value fails once past the limit, without any CRLF.
        let mut endless = b"0\r\nX: ".to_vec();
        endless.resize(3 + MAX_TRAILER_SECTION + 1, b'v');
        check_invalid(&endless, ChunkedError::TrailersTooLarge);
        let got = whole(&endless[..3 + MAX_TRAILER_SECTION]);
        assert_eq!((got.done, got.err), (false, None));
    }

    // ---- the decoder's lifecycle ----

    #[test]
    fn new_and_default_start_a_body() {
        for mut decoder in [ChunkedDecoder::new(), ChunkedDecoder::default()] {
            assert!(!decoder.is_done());
            let empty = decoder.decode(b"", &mut |_| panic!("no data"));
            assert_eq!(
                empty,
                Ok(Progress {
                    consumed: 0,
                    done: false
                })
            );
            let end = decoder.decode(LAST_CHUNK, &mut |_| panic!("no data"));
            assert_eq!(
                end,
                Ok(Progress {
                    consumed: 5,
                    done: true
                })
            );
            assert!(decoder.is_done());
        }
    }

    #[test]
    fn nothing_is_consumed_after_done() {
        let mut decoder = ChunkedDecoder::new();
        let first = decoder.decode(b"1\r\na\r\n0\r\n\r\n1\r\nb\r\n", &mut |_| {});
        assert_eq!(
            first,
            Ok(Progress {
                consumed: 11,
                done: true
            })
        );
        for input in [&b""[..], b"1\r\nb\r\n", b"\r\n", b"garbage"] {
            let again = decoder.decode(input, &mut |_| panic!("data after done"));
            assert_eq!(
                again,
                Ok(Progress {
                    consumed: 0,
                    done: true
                })
            );
        }
    }

    #[test]
    fn errors_are_sticky() {
        let mut decoder = ChunkedDecoder::new();
        assert_eq!(
            decoder.decode(b"z", &mut |_| {}),
            Err(ChunkedError::BadSize)
        );
        assert_eq!(decoder.decode(b"", &mut |_| {}), Err(ChunkedError::BadSize));
        assert_eq!(
            decoder.decode(LAST_CHUNK, &mut |_| {}),
            Err(ChunkedError::BadSize)
        );
        assert!(!decoder.is_done());
    }

    #[test]
    fn errors_display() {
        let all = [
            ChunkedError::BadSize,
            ChunkedError::SizeOverflow,
            ChunkedError::BadLineEnding,
            ChunkedError::LineTooLong,
            ChunkedError::TrailersTooLarge,
            ChunkedError::BadTrailer,
        ];
        for (i, a) in all.iter().enumerate() {
            assert!(!a.to_string().is_empty());
            for b in &all[i + 1..] {
                assert_ne!(a.to_string(), b.to_string());
            }
        }
    }

    // ---- encoding ----

    fn header(len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        encode_chunk_header(len, &mut out);
        out
    }

    #[test]
    fn chunk_header_is_lowercase_hex_and_crlf() {
        assert_eq!(header(0), b"0\r\n");
        assert_eq!(header(1), b"1\r\n");
        assert_eq!(header(0xf), b"f\r\n");
        assert_eq!(header(0x10), b"10\r\n");
        assert_eq!(header(0x1a2b), b"1a2b\r\n");
        assert_eq!(header(8192), b"2000\r\n");
        let digits = 2 * std::mem::size_of::<usize>();
        let max = [vec![b'f'; digits], b"\r\n".to_vec()].concat();
        assert_eq!(header(usize::MAX), max);
    }

    #[test]
    fn chunk_header_appends() {
        let mut out = b"prefix".to_vec();
        encode_chunk_header(255, &mut out);
        assert_eq!(out, b"prefixff\r\n");
    }

    #[test]
    fn encoder_constants() {
        assert_eq!(CHUNK_TRAILER_CRLF, b"\r\n");
        check_valid(LAST_CHUNK, b"");
        // A zero-length header starts a trailer section.
        let wire = [&header(0)[..], b"X-Sum: 1\r\n", CHUNK_TRAILER_CRLF].concat();
        check_valid(&wire, b"");
    }

    // ---- randomised ----

    /// xorshift64*: deterministic, so a failure reproduces.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn byte(&mut self) -> u8 {
            (self.next() >> 56) as u8
        }
    }

    /// Cuts `input` into up to 8 pieces at random points.
    fn random_split<'a>(input: &'a [u8], rng: &mut Rng) -> Vec<&'a [u8]> {
        let mut cuts: Vec<usize> = (0..rng.below(8))
            .map(|_| rng.below(input.len() + 1))
            .collect();
        cuts.sort_unstable();
        let mut pieces = Vec::new();
        let mut start = 0;
        for cut in cuts {
            pieces.push(&input[start..cut]);
            start = cut;
        }
        pieces.push(&input[start..]);
        pieces
    }

    /// Encodes `payload` in chunks of random sizes, with random extensions
    /// and trailers, as `encode_chunk_header` and the constants allow.
    fn random_body(payload: &[u8], rng: &mut Rng) -> Vec<u8> {
        let mut wire = Vec::new();
        let mut rest = payload;
        while !rest.is_empty() {
            let len = (1 + rng.below(300)).min(rest.len());
            encode_chunk_header(len, &mut wire);
            if rng.below(4) == 0 {
                // Slip an extension between the digits and the CRLF.
                wire.truncate(wire.len() - 2);
                wire.extend_from_slice(b" ;ext=\"v\"\r\n");
            }
            wire.extend_from_slice(&rest[..len]);
            wire.extend_from_slice(CHUNK_TRAILER_CRLF);
            rest = &rest[len..];
        }
        if rng.below(2) == 0 {
            wire.extend_from_slice(LAST_CHUNK);
        } else {
            encode_chunk_header(0, &mut wire);
            wire.extend_from_slice(b"X-Checksum: abc\r\nX-Other:\r\n\r\n");
        }
        wire
    }

    #[test]
    fn encode_then_decode_round_trips() {
        let mut rng = Rng(0x5eed_0fc0_ffee);
        for _ in 0..500 {
            let payload: Vec<u8> = (0..rng.below(2000)).map(|_| rng.byte()).collect();
            let wire = random_body(&payload, &mut rng);
            let input = [&wire[..], NEXT].concat();
            let want = Outcome {
                data: payload,
                passed: wire,
                done: true,
                err: None,
            };
            assert_eq!(whole(&input), want);
            assert_eq!(feed(random_split(&input, &mut rng)), want);
        }
    }

    #[test]
    fn garbage_never_panics_and_splits_agree() {
        const ALPHABET: &[u8] = b"0123456789abcdefABCDEF;=\" \t\r\n:xX-\x00\x7f\x80\xff";
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..30_000 {
            let input: Vec<u8> = (0..rng.below(64))
                .map(|_| match rng.below(8) {
                    0 => rng.byte(),
                    _ => ALPHABET[rng.below(ALPHABET.len())],
                })
                .collect();
            let want = whole(&input);
            assert_eq!(feed(random_split(&input, &mut rng)), want, "{input:?}");
        }
    }

    #[test]
    fn mutated_bodies_never_panic_and_splits_agree() {
        const INTERESTING: &[u8] = b"0fF; \t\r\n:\"\x00";
        let mut rng = Rng(0xdead_beef_cafe_f00d);
        for _ in 0..20_000 {
            let payload: Vec<u8> = (0..rng.below(40)).map(|_| rng.byte()).collect();
            let mut input = random_body(&payload, &mut rng);
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(input.len() + 1);
                let byte = match rng.below(2) {
                    0 => rng.byte(),
                    _ => INTERESTING[rng.below(INTERESTING.len())],
                };
                match rng.below(3) {
                    0 => input.insert(at, byte),
                    1 if at < input.len() => input[at] = byte,
                    _ if at < input.len() => {
                        input.remove(at);
                    }
                    _ => {}
                }
            }
            let want = whole(&input);
            assert_eq!(feed(random_split(&input, &mut rng)), want, "{input:?}");
        }
    }
}
