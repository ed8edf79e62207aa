//! HTTP/1.1 on a blocking socket, for the admin listener: read a head (httparse), skip any
//! body by its Content-Length, answer, and keep the connection for the next request unless
//! either side said close.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Instant, SystemTime};

use super::endpoints::{self, Reply};
use super::{AdminContext, Settings};
use crate::http::answers::{field, write_status_line, SERVER};

/// Largest admin request head; more is answered 431.
pub(super) const MAX_HEAD_BYTES: usize = 8 * 1024;
/// Most header fields in an admin request; more is answered 431.
pub(super) const MAX_HEADERS: usize = 32;
/// Largest admin request body (no endpoint reads one); more is answered 413.
pub(super) const MAX_BODY_BYTES: usize = 64 * 1024;

/// A request head, owned so the read buffer can move on.
struct Head {
    method: String,
    target: String,
    head_len: usize,
    body_len: usize,
    close: bool,
}

enum ReadError {
    /// Answer with this status, then close.
    Status(u16),
    /// The client went away, or went quiet between requests: close without a word.
    Gone,
}

pub(super) fn serve(mut stream: TcpStream, ctx: &AdminContext, settings: &Settings) {
    let _ = stream.set_nodelay(true);
    if stream.set_write_timeout(Some(settings.io_timeout)).is_err() {
        return;
    }
    let mut buf = Vec::with_capacity(1024);
    let mut out = Vec::with_capacity(1024);
    loop {
        // One deadline for the whole request, so trickled bytes cannot stretch it.
        let deadline = Instant::now() + settings.io_timeout;
        let head = match read_request(&mut stream, &mut buf, deadline) {
            Ok(head) => head,
            Err(ReadError::Gone) => return,
            Err(ReadError::Status(status)) => {
                let reason = crate::http::answers::reason(status);
                let reply = Reply::text(status, &format!("{status} {reason}\n"));
                out.clear();
                write_reply(&mut out, &reply, true, true);
                if stream.write_all(&out).is_ok() {
                    linger(&mut stream, settings);
                }
                return;
            }
        };
        buf.drain(..head.head_len + head.body_len);
        let reply = endpoints::answer(ctx, settings, &head.method, &head.target);
        out.clear();
        write_reply(&mut out, &reply, head.method != "HEAD", head.close);
        if stream.write_all(&out).is_err() || head.close {
            return;
        }
    }
}

/// Reads until `buf` holds a whole request (head and body), or fails.
fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
) -> Result<Head, ReadError> {
    let head = loop {
        if let Some(head) = parse_head(buf)? {
            break head;
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Err(ReadError::Status(431));
        }
        // Quiet before the first byte is an idle keep-alive connection ending; quiet after
        // it is a client too slow to finish its request.
        let pending = !buf.is_empty();
        read_more(stream, buf, deadline, pending)?;
    };
    if head.body_len > MAX_BODY_BYTES {
        return Err(ReadError::Status(413));
    }
    while buf.len() < head.head_len + head.body_len {
        read_more(stream, buf, deadline, true)?;
    }
    Ok(head)
}

fn parse_head(buf: &[u8]) -> Result<Option<Head>, ReadError> {
    if buf.is_empty() {
        return Ok(None);
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        // However the bytes arrived, a head over the limit is refused.
        Ok(httparse::Status::Complete(n)) if n > MAX_HEAD_BYTES => {
            return Err(ReadError::Status(431))
        }
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(ReadError::Status(431)),
        Err(_) => return Err(ReadError::Status(400)),
    };
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(ReadError::Status(400));
    };
    // HTTP/1.0 clients get their answer and the connection closes: no keep-alive dialect.
    let mut close = version == 0;
    let mut body_len: Option<usize> = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let len = std::str::from_utf8(h.value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or(ReadError::Status(400))?;
            // RFC 9112 §6.3: differing lengths make the framing unknowable.
            if body_len.is_some_and(|n| n != len) {
                return Err(ReadError::Status(400));
            }
            body_len = Some(len);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // No endpoint takes a body; a chunked one is refused rather than decoded.
            return Err(ReadError::Status(400));
        } else if h.name.eq_ignore_ascii_case("connection") {
            close |= h
                .value
                .split(|&b| b == b',')
                .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
    }
    Ok(Some(Head {
        method: method.to_string(),
        target: target.to_string(),
        head_len,
        body_len: body_len.unwrap_or(0),
        close,
    }))
}

/// One read before `deadline`. `pending`: the request has begun, so running out of time
/// is answered 408 rather than ending the connection quietly.
fn read_more(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: Instant,
    pending: bool,
) -> Result<(), ReadError> {
    let timed_out = if pending {
        ReadError::Status(408)
    } else {
        ReadError::Gone
    };
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Err(timed_out);
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Err(ReadError::Gone),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(());
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(timed_out)
            }
            Err(_) => return Err(ReadError::Gone),
        }
    }
}

/// Closes after an error answer without destroying it: closing a socket with unread bytes
/// (the rest of a refused body) sends a reset, which can overtake the answer. So stop writing,
/// then read and discard until the client closes, for a bounded time and amount.
fn linger(stream: &mut TcpStream, settings: &Settings) {
    const MAX_DISCARD: usize = 1024 * 1024;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let deadline = Instant::now() + settings.io_timeout.min(LINGER_TIMEOUT);
    let mut sink = [0u8; 4096];
    let mut discarded = 0;
    while discarded < MAX_DISCARD {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut sink) {
            Ok(0) => return,
            Ok(n) => discarded += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// How long [`linger`] waits for a client to finish sending after an error answer.
const LINGER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Status line, Date, Server, framing, then the body unless `send_body` is false (HEAD).
pub(super) fn write_reply(out: &mut Vec<u8>, reply: &Reply, send_body: bool, close: bool) {
    write_status_line(out, reply.status);
    field(
        out,
        b"Date",
        httpdate::fmt_http_date(SystemTime::now()).as_bytes(),
    );
    field(out, b"Server", SERVER);
    field(out, b"Content-Type", reply.content_type.as_bytes());
    field(
        out,
        b"Content-Length",
        itoa::Buffer::new().format(reply.body.len()).as_bytes(),
    );
    // Health, metrics and config describe this moment: nothing on the way may keep a copy.
    field(out, b"Cache-Control", b"no-store");
    if let Some(allow) = reply.allow {
        field(out, b"Allow", allow.as_bytes());
    }
    if close {
        field(out, b"Connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
    if send_body {
        out.extend_from_slice(&reply.body);
    }
}
