//! HTTP/1.1 wire format: heads, bodies, and the answers the gateway writes itself.

pub mod answers;
pub mod chunked;
pub mod date;
pub mod headers;
pub mod path;
#[cfg(test)]
mod path_model_tests;
pub mod request;
pub mod response;
pub mod token;

/// Why a request head was refused. [`ParseError::status`] is the one place that maps each to
/// the status the client receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// 400: httparse refused the bytes (bad token, obs-fold, bare CR, NUL, space before colon).
    Malformed,
    /// 400: no Host in a 1.1 request, several Host fields, or an invalid one.
    BadHost,
    /// 400: a target that is neither origin-, absolute- nor (for OPTIONS) asterisk-form.
    BadTarget,
    /// 400: a path that is malformed or climbs above the root.
    BadPath,
    /// 400: invalid or differing Content-Length values.
    BadContentLength,
    /// 400: Content-Length together with Transfer-Encoding.
    BothLengthAndChunked,
    /// 400: Transfer-Encoding whose final coding is not chunked, or in an HTTP/1.0 request.
    BadTransferEncoding,
    /// 501: a transfer coding before chunked that the gateway does not implement.
    UnsupportedTransferCoding,
    /// 417: an Expect other than 100-continue.
    ExpectationFailed,
    /// 405: CONNECT; tunnelling is not offered.
    MethodNotAllowed,
    /// 414: request target over `max_uri_bytes`.
    UriTooLong,
    /// 431: more than `max_headers` fields.
    TooManyHeaders,
    /// 431: head over `max_header_bytes`.
    HeadTooLarge,
    /// 505: a version other than HTTP/1.0 and HTTP/1.1, the h2 preface included.
    VersionNotSupported,
}

impl ParseError {
    pub fn status(self) -> u16 {
        match self {
            ParseError::Malformed
            | ParseError::BadHost
            | ParseError::BadTarget
            | ParseError::BadPath
            | ParseError::BadContentLength
            | ParseError::BothLengthAndChunked
            | ParseError::BadTransferEncoding => 400,
            ParseError::UnsupportedTransferCoding => 501,
            ParseError::ExpectationFailed => 417,
            ParseError::MethodNotAllowed => 405,
            ParseError::UriTooLong => 414,
            ParseError::TooManyHeaders | ParseError::HeadTooLarge => 431,
            ParseError::VersionNotSupported => 505,
        }
    }
}
