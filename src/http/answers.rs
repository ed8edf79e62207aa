//! Responses the gateway writes itself: errors and `direct` routes. Each carries `Date` and
//! `Server`, and is assembled into the connection's write buffer without formatting machinery.

pub const SERVER: &[u8] = b"shardgate";

/// Reason phrases for the statuses the gateway produces or forwards without one.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

pub fn write_status_line(out: &mut Vec<u8>, status: u16) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The gateway's own response: status line, Date, Server, framing and body.
pub struct Answer<'a> {
    pub status: u16,
    pub content_type: &'a [u8],
    pub body: &'a [u8],
    /// Whether to write the body (false for HEAD).
    pub send_body: bool,
    pub close: bool,
    /// An HTTP/1.0 client closes unless told `Connection: keep-alive`.
    pub http10: bool,
    pub request_id: Option<&'a [u8]>,
    pub extra: &'a [(&'a [u8], &'a [u8])],
}

impl Answer<'_> {
    pub fn write(&self, out: &mut Vec<u8>, date: &[u8]) {
        write_status_line(out, self.status);
        field(out, b"Server", SERVER);
        field(out, b"Date", date);
        if !matches!(self.status, 204 | 304) {
            if !self.content_type.is_empty() {
                field(out, b"Content-Type", self.content_type);
            }
            field(
                out,
                b"Content-Length",
                itoa::Buffer::new().format(self.body.len()).as_bytes(),
            );
        }
        if let Some(id) = self.request_id {
            field(out, b"X-Request-Id", id);
        }
        for (name, value) in self.extra {
            field(out, name, value);
        }
        if self.close {
            field(out, b"Connection", b"close");
        } else if self.http10 {
            field(out, b"Connection", b"keep-alive");
        }
        out.extend_from_slice(b"\r\n");
        if self.send_body && !matches!(self.status, 204 | 304) {
            out.extend_from_slice(self.body);
        }
    }
}

/// An error answer: a one-line text body naming the status, and `Connection: close` when the
/// connection cannot be trusted to carry another request.
#[allow(clippy::too_many_arguments)] // each is one independent fact about the answer
pub fn write_error(
    out: &mut Vec<u8>,
    status: u16,
    date: &[u8],
    close: bool,
    http10: bool,
    send_body: bool,
    request_id: &[u8],
    extra: &[(&[u8], &[u8])],
) {
    let mut body = [0u8; 64];
    let text = error_body(status, &mut body);
    // RFC 9110 §15.5.6: a 405 says what is allowed. The only method refused outright is CONNECT.
    let allow: &[(&[u8], &[u8])] = &[(b"Allow", ALLOWED_METHODS)];
    let extra = if status == 405 && extra.is_empty() {
        allow
    } else {
        extra
    };
    Answer {
        status,
        content_type: b"text/plain",
        body: text,
        send_body,
        close,
        http10,
        request_id: (!request_id.is_empty()).then_some(request_id),
        extra,
    }
    .write(out, date);
}

const ALLOWED_METHODS: &[u8] = b"GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, TRACE";

fn error_body(status: u16, scratch: &mut [u8; 64]) -> &[u8] {
    let mut n = 0;
    for part in [
        itoa::Buffer::new().format(status).as_bytes(),
        b" ",
        reason(status).as_bytes(),
        b"\n",
    ] {
        let take = part.len().min(scratch.len() - n);
        scratch[n..n + take].copy_from_slice(&part[..take]);
        n += take;
    }
    &scratch[..n]
}

pub fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answer_shape() {
        let mut out = Vec::new();
        write_error(
            &mut out,
            431,
            b"Sun, 06 Nov 1994 08:49:37 GMT",
            true,
            false,
            true,
            b"",
            &[],
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(text.contains("\r\nServer: shardgate\r\n"));
        assert!(text.contains("\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"));
        assert!(text.contains("\r\nConnection: close\r\n"));
        assert!(text.ends_with("\r\n\r\n431 Request Header Fields Too Large\n"));
        let len = "431 Request Header Fields Too Large\n".len();
        assert!(text.contains(&format!("Content-Length: {len}\r\n")));
    }
}
