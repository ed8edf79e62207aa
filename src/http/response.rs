//! Upstream response heads: parsed and validated as strictly as requests, since a confused
//! upstream is as dangerous to the next client on a pooled connection as a hostile client.

use std::mem::MaybeUninit;
use std::ops::Range;

use super::headers::{self, ConnectionOptions, Field, Kind};
use super::request::{Method, Version};

/// How the response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    /// HEAD responses, 1xx, 204 and 304 (rules 1 and 2).
    None,
    Length(u64),
    Chunked,
    /// Read until the upstream closes (rule 7, or a transfer coding other than final chunked).
    Close,
}

/// Why an upstream response head was refused (the client gets 502).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadResponse {
    Malformed,
    TooLarge,
    BothLengthAndChunked,
    BadContentLength,
    /// A transfer coding other than a single `chunked`: the gateway would have to decode it to
    /// take it off (Transfer-Encoding is hop-by-hop) and does not implement any other.
    UnsupportedTransferCoding,
}

#[derive(Debug)]
pub struct ResponseHead {
    pub status: u16,
    pub reason: Range<usize>,
    pub version: Version,
    pub fields: Vec<Field>,
    pub connection: ConnectionOptions,
    pub framing: ResponseFraming,
    /// The validated Content-Length, re-emitted as one field whatever the upstream sent.
    pub content_length: Option<u64>,
    pub len: usize,
}

impl Default for ResponseHead {
    fn default() -> Self {
        ResponseHead {
            status: 0,
            reason: 0..0,
            version: Version::Http11,
            fields: Vec::with_capacity(16),
            connection: ConnectionOptions::default(),
            framing: ResponseFraming::None,
            content_length: None,
            len: 0,
        }
    }
}

impl ResponseHead {
    /// Whether the upstream will keep the connection open after this response.
    pub fn keep_alive(&self) -> bool {
        self.connection.persistent(self.version)
    }

    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status)
    }

    /// Parses the head at the start of `buf`; `Ok(false)` means more bytes are needed.
    pub fn parse(
        &mut self,
        buf: &[u8],
        max_headers: usize,
        max_bytes: usize,
        method: Method,
    ) -> Result<bool, BadResponse> {
        let mut raw: [MaybeUninit<httparse::Header<'_>>; crate::config::MAX_HEADERS_CEILING + 1] =
            [const { MaybeUninit::uninit() }; crate::config::MAX_HEADERS_CEILING + 1];
        let mut res = httparse::Response::new(&mut []);
        let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut res,
            buf,
            &mut raw[..max_headers + 1],
        );
        let len = match parsed {
            Ok(httparse::Status::Complete(len)) if len <= max_bytes => len,
            Ok(httparse::Status::Partial) if buf.len() < max_bytes => return Ok(false),
            Ok(_) | Err(httparse::Error::TooManyHeaders) => return Err(BadResponse::TooLarge),
            Err(_) => return Err(BadResponse::Malformed),
        };
        if res.headers.len() > max_headers {
            return Err(BadResponse::TooLarge);
        }
        let base = buf.as_ptr() as usize;
        let offset = |s: &[u8]| {
            let start = s.as_ptr() as usize - base;
            start..start + s.len()
        };
        self.status = res.code.unwrap_or(0);
        if !(100..=999).contains(&self.status) {
            return Err(BadResponse::Malformed);
        }
        self.reason = offset(res.reason.unwrap_or("").as_bytes());
        self.version = if res.version == Some(0) {
            Version::Http10
        } else {
            Version::Http11
        };
        self.len = len;
        self.fields.clear();
        self.connection.clear();

        let mut length = None;
        let mut transfer_encoding = false;
        let mut chunked = false;
        for h in res.headers.iter() {
            let field = Field {
                name: offset(h.name.as_bytes()),
                value: offset(h.value),
                kind: Kind::of(h.name.as_bytes()),
            };
            match field.kind {
                Kind::ContentLength => {
                    let n =
                        headers::content_length(h.value).ok_or(BadResponse::BadContentLength)?;
                    if length.is_some_and(|prev| prev != n) {
                        return Err(BadResponse::BadContentLength);
                    }
                    length = Some(n);
                }
                Kind::TransferEncoding => {
                    transfer_encoding = true;
                    for coding in headers::list(h.value) {
                        // Only a single `chunked` over all lines is accepted (as nginx does
                        // since 1.23): chunked twice, or gzip under it, can't be passed on as-is.
                        if chunked || !coding.eq_ignore_ascii_case(b"chunked") {
                            return Err(BadResponse::UnsupportedTransferCoding);
                        }
                        chunked = true;
                    }
                }
                Kind::Connection => self.connection.add(buf, field.value.clone()),
                _ => {}
            }
            self.fields.push(field);
        }

        let bodiless =
            method == Method::Head || self.is_interim() || self.status == 204 || self.status == 304;
        if transfer_encoding && !chunked {
            return Err(BadResponse::UnsupportedTransferCoding);
        }
        if transfer_encoding && self.version == Version::Http10 {
            // RFC 9112 §6.1: Transfer-Encoding in a 1.0 message is faulty framing. The chunked
            // body is still decoded, but the connection is closed after it.
            self.connection.close = true;
        }
        self.content_length = length;
        self.framing = match (transfer_encoding, length) {
            (true, Some(_)) => return Err(BadResponse::BothLengthAndChunked),
            _ if bodiless => ResponseFraming::None,
            (true, None) => ResponseFraming::Chunked,
            (false, Some(n)) => ResponseFraming::Length(n),
            (false, None) => ResponseFraming::Close,
        };
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8], method: Method) -> Result<ResponseHead, BadResponse> {
        let mut head = ResponseHead::default();
        assert!(head.parse(raw, 16, 4096, method)?, "incomplete");
        Ok(head)
    }

    #[test]
    fn framing() {
        let h = parse(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            Method::Get,
        )
        .unwrap();
        assert_eq!(h.framing, ResponseFraming::Length(2));
        let h = parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            Method::Get,
        )
        .unwrap();
        assert_eq!(h.framing, ResponseFraming::Chunked);
        for te in [
            "gzip",
            "gzip, chunked",
            "chunked, chunked",
            "chunked\r\nTransfer-Encoding: chunked",
        ] {
            let raw = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: {te}\r\n\r\n");
            let got = parse(raw.as_bytes(), Method::Get).err();
            assert_eq!(got, Some(BadResponse::UnsupportedTransferCoding), "{te}");
        }
        let raw = b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        let h = parse(raw, Method::Get).unwrap();
        assert_eq!(h.framing, ResponseFraming::Chunked);
        assert!(!h.keep_alive());
        let h = parse(b"HTTP/1.1 200 OK\r\n\r\n", Method::Get).unwrap();
        assert_eq!(h.framing, ResponseFraming::Close);
        let h = parse(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
            Method::Head,
        )
        .unwrap();
        assert_eq!(h.framing, ResponseFraming::None);
        let h = parse(
            b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
            Method::Get,
        )
        .unwrap();
        assert_eq!(h.framing, ResponseFraming::None);
        let h = parse(
            b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
            Method::Get,
        )
        .unwrap();
        assert!(h.is_interim());
    }

    #[test]
    fn refuses_ambiguous_and_broken() {
        let both = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(
            parse(both, Method::Get).err(),
            Some(BadResponse::BothLengthAndChunked)
        );
        let bad = b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n";
        assert_eq!(
            parse(bad, Method::Get).err(),
            Some(BadResponse::BadContentLength)
        );
        let differ = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(
            parse(differ, Method::Get).err(),
            Some(BadResponse::BadContentLength)
        );
        assert_eq!(
            parse(b"HTTP/1.1 abc OK\r\n\r\n", Method::Get).err(),
            Some(BadResponse::Malformed)
        );
        assert_eq!(
            parse(b"garbage\r\n\r\n", Method::Get).err(),
            Some(BadResponse::Malformed)
        );
        let mut head = ResponseHead::default();
        let big = format!("HTTP/1.1 200 OK\r\nX: {}\r\n", "a".repeat(5000));
        assert_eq!(
            head.parse(big.as_bytes(), 16, 4096, Method::Get),
            Err(BadResponse::TooLarge)
        );
    }
}
