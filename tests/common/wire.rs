//! HTTP/1.1 message reading shared by the test client and the test origins.
//!
//! Deliberately independent from the gateway's parser: lenient where the
//! gateway must be strict, and strict only about what a test asserts.

use std::io::{self, BufRead, Read};

/// Upper bound on one head line, so a runaway peer fails a test instead of
/// eating memory.
const MAX_LINE: usize = 1 << 20;

/// Header fields (name, value) in wire order.
pub type Fields = Vec<(String, String)>;

/// A parsed start line plus header fields, in wire order.
#[derive(Clone, Debug, Default)]
pub struct Head {
    pub start_line: String,
    pub headers: Vec<(String, String)>,
    /// The head exactly as received, for byte-level assertions.
    pub raw: Vec<u8>,
}

/// Reads one line up to and including `\n`. `Ok(None)` means EOF before any byte.
fn read_line<R: BufRead>(r: &mut R, raw: &mut Vec<u8>) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    let n = r.take(MAX_LINE as u64).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    raw.extend_from_slice(&line);
    if line.last() != Some(&b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "EOF inside a head line: {:?}",
                String::from_utf8_lossy(&line)
            ),
        ));
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Some(String::from_utf8_lossy(&line).into_owned()))
}

/// Reads a head (start line and fields up to the empty line).
/// `Ok(None)` means the peer closed cleanly before sending anything.
pub fn read_head<R: BufRead>(r: &mut R) -> io::Result<Option<Head>> {
    let mut raw = Vec::new();
    let start_line = match read_line(r, &mut raw)? {
        None => return Ok(None),
        Some(l) => l,
    };
    let mut headers = Vec::new();
    loop {
        let line = read_line(r, &mut raw)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "EOF inside a head"))?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("header without colon: {line:?}"),
            )
        })?;
        headers.push((name.to_string(), value.trim().to_string()));
    }
    Ok(Some(Head {
        start_line,
        headers,
        raw,
    }))
}

/// All values of a header field, case-insensitively, in wire order.
pub fn values<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The comma-joined value of a (list-valued) header field, or None when absent.
pub fn joined(headers: &[(String, String)], name: &str) -> Option<String> {
    let v = values(headers, name);
    if v.is_empty() {
        None
    } else {
        Some(v.join(", "))
    }
}

/// Whether a list-valued header (Connection, Transfer-Encoding) holds `token`.
pub fn has_token(headers: &[(String, String)], name: &str, token: &str) -> bool {
    values(headers, name)
        .iter()
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

pub fn content_length(headers: &[(String, String)]) -> io::Result<Option<usize>> {
    match values(headers, "content-length").first() {
        None => Ok(None),
        Some(v) => v.trim().parse().map(Some).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad Content-Length {v:?}"),
            )
        }),
    }
}

pub fn read_exact_vec<R: Read>(r: &mut R, len: usize) -> io::Result<Vec<u8>> {
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok(body)
}

/// Decodes a chunked body (RFC 9112 §7.1), ignoring chunk extensions.
/// Returns the payload and the trailer fields.
pub fn read_chunked<R: BufRead>(r: &mut R) -> io::Result<(Vec<u8>, Fields)> {
    let mut body = Vec::new();
    let mut scratch = Vec::new();
    loop {
        let line = read_line(r, &mut scratch)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "EOF before a chunk"))?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad chunk size line {line:?}"),
            )
        })?;
        if size == 0 {
            break;
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf)?;
        if &crlf != b"\r\n" {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "chunk not followed by CRLF",
            ));
        }
    }
    let mut trailers = Vec::new();
    loop {
        let line = read_line(r, &mut scratch)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "EOF in trailers"))?;
        if line.is_empty() {
            break;
        }
        if let Some((n, v)) = line.split_once(':') {
            trailers.push((n.to_string(), v.trim().to_string()));
        }
    }
    Ok((body, trailers))
}

/// Reads until EOF. A reset after some bytes counts as the end, since a
/// closing peer may reset once its lingering time is over.
pub fn read_until_eof<R: Read>(r: &mut R, out: &mut Vec<u8>) -> io::Result<()> {
    let mut buf = [0u8; 64 * 1024];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_reset(&e) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

pub fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Encodes `body` as chunks of at most `size` bytes, with the last chunk.
pub fn encode_chunked(body: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / size.max(1) * 10 + 8);
    for chunk in body.chunks(size.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// FNV-1a, 64 bit: enough to compare multi-MiB bodies byte-exactly in an
/// assertion message without printing them.
pub fn checksum(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Deterministic pseudo-random bytes (xorshift64*), so a misplaced or
/// repeated block changes the checksum.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}
