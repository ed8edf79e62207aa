//! One probe on a blocking socket: connect, send `GET`, read the status line, all within one
//! deadline. Runs on a probe thread, never on a shard.
//!
//! The probe stops at the status line: the status alone decides, and waiting for the rest of
//! the head would only give a slow target more ways to fail. `Connection: close` tells the
//! target not to keep the connection for us.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::config::{is_visible_ascii, CheckConfig};
use super::target::FailureKind;

/// The longest status line read: `HTTP/1.1 503 ` and a reason phrase of some length. A
/// target that sends more without a line end is not speaking HTTP.
pub(super) const MAX_STATUS_LINE: usize = 1024;

/// The longest a probe may take, whatever its `timeout` says.
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// Why one probe failed; its `Display` is the reason logged with a transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Failure {
    Refused,
    /// The connect failed otherwise (unreachable, no route, out of descriptors).
    Connect(io::ErrorKind),
    Timeout,
    /// Closed by the target before a whole status line came.
    Closed,
    Reset,
    /// Reading or writing failed otherwise.
    Io(io::ErrorKind),
    MalformedStatusLine,
    StatusLineTooLong,
    /// A status outside `expected_statuses`.
    Status(u16),
    /// The configured path or host cannot go on a request line or in a header.
    BadRequest(&'static str),
}

impl Failure {
    pub(super) fn kind(&self) -> FailureKind {
        match self {
            Failure::Refused | Failure::Connect(_) => FailureKind::Connect,
            Failure::Timeout => FailureKind::Timeout,
            Failure::Closed | Failure::Reset | Failure::Io(_) => FailureKind::Reset,
            Failure::MalformedStatusLine | Failure::StatusLineTooLong => FailureKind::BadResponse,
            Failure::Status(_) => FailureKind::Status,
            Failure::BadRequest(_) => FailureKind::Config,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Refused => f.write_str("connection refused"),
            Failure::Connect(kind) => write!(f, "connect failed: {kind}"),
            Failure::Timeout => f.write_str("timeout"),
            Failure::Closed => f.write_str("connection closed before the status line"),
            Failure::Reset => f.write_str("connection reset"),
            Failure::Io(kind) => write!(f, "i/o error: {kind}"),
            Failure::MalformedStatusLine => f.write_str("malformed status line"),
            Failure::StatusLineTooLong => {
                write!(f, "no status line in the first {MAX_STATUS_LINE} bytes")
            }
            Failure::Status(code) => write!(f, "status {code}"),
            Failure::BadRequest(what) => write!(f, "cannot send the check request: bad {what}"),
        }
    }
}

/// The probe's request, built once per (target, check) rather than per probe.
pub(super) fn request(config: &CheckConfig, addr: SocketAddr) -> Result<Vec<u8>, Failure> {
    if !config.path.starts_with('/') || !is_visible_ascii(&config.path) {
        return Err(Failure::BadRequest("path"));
    }
    let host = match &config.host {
        Some(host) if host.is_empty() || !is_visible_ascii(host) => {
            return Err(Failure::BadRequest("host"))
        }
        Some(host) => host.clone(),
        None => crate::upstream::host_of(addr),
    };
    Ok(format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: shardgate-health-check\r\n\
         Connection: close\r\n\r\n",
        config.path
    )
    .into_bytes())
}

/// Runs one probe of `addr` and returns the status it got, within `timeout` in all.
pub(super) fn run(addr: SocketAddr, request: &[u8], timeout: Duration) -> Result<u16, Failure> {
    // An absurd timeout (which config validation should refuse) is capped rather than left
    // to overflow the clock arithmetic, which would panic.
    let timeout = timeout.min(MAX_TIMEOUT);
    let deadline = Instant::now() + timeout;
    let mut stream = connect(addr, timeout)?;
    // One segment, sent now: the request is small and nothing else follows it.
    let _ = stream.set_nodelay(true);
    stream
        .set_write_timeout(Some(left(deadline)?))
        .map_err(io_failure)?;
    stream.write_all(request).map_err(io_failure)?;
    let mut line = [0u8; MAX_STATUS_LINE];
    let mut filled = 0;
    loop {
        // A deadline for the whole read, not per `read`: a target trickling a byte at a time
        // must still be done within `timeout`.
        stream
            .set_read_timeout(Some(left(deadline)?))
            .map_err(io_failure)?;
        let n = match stream.read(&mut line[filled..]) {
            Ok(0) => return Err(Failure::Closed),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_failure(e)),
        };
        let seen = filled;
        filled += n;
        if let Some(end) = line[seen..filled].iter().position(|&b| b == b'\n') {
            return parse_status_line(&line[..seen + end]);
        }
        if filled == line.len() {
            return Err(Failure::StatusLineTooLong);
        }
    }
}

fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, Failure> {
    if timeout.is_zero() {
        // `connect_timeout` refuses a zero timeout; a zero budget is simply spent.
        return Err(Failure::Timeout);
    }
    TcpStream::connect_timeout(&addr, timeout).map_err(|e| match e.kind() {
        io::ErrorKind::ConnectionRefused => Failure::Refused,
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Failure::Timeout,
        kind => Failure::Connect(kind),
    })
}

/// Time left before `deadline`; none left is a timeout (and a zero socket timeout would be
/// refused by `set_read_timeout` anyway).
fn left(deadline: Instant) -> Result<Duration, Failure> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(Failure::Timeout)
    } else {
        Ok(left)
    }
}

fn io_failure(e: io::Error) -> Failure {
    match e.kind() {
        // A socket timeout shows as `WouldBlock` (EAGAIN) on Unix and `TimedOut` on Windows.
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Failure::Timeout,
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => Failure::Reset,
        kind => Failure::Io(kind),
    }
}

/// `HTTP-version SP status-code SP [ reason-phrase ]` (RFC 9112 §4), given without its line
/// end. Also takes a status line with no space after the code, as many clients do.
fn parse_status_line(line: &[u8]) -> Result<u16, Failure> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let rest = line
        .strip_prefix(b"HTTP/1.")
        .ok_or(Failure::MalformedStatusLine)?;
    let (minor, rest) = rest.split_first().ok_or(Failure::MalformedStatusLine)?;
    let rest = rest
        .strip_prefix(b" ")
        .ok_or(Failure::MalformedStatusLine)?;
    let (code, after) = rest
        .split_at_checked(3)
        .ok_or(Failure::MalformedStatusLine)?;
    let digits_ok = minor.is_ascii_digit()
        && matches!(code, [b'1'..=b'9', b'0'..=b'9', b'0'..=b'9'])
        && (after.is_empty() || after[0] == b' ');
    if !digits_ok {
        return Err(Failure::MalformedStatusLine);
    }
    Ok(code.iter().fold(0u16, |n, &d| n * 10 + u16::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r"), Ok(200));
        assert_eq!(
            parse_status_line(b"HTTP/1.0 503 Service Unavailable"),
            Ok(503)
        );
        assert_eq!(parse_status_line(b"HTTP/1.1 204 \r"), Ok(204));
        assert_eq!(parse_status_line(b"HTTP/1.1 301\r"), Ok(301));
        for bad in [
            &b""[..],
            b"\r",
            b"HTTP/1.1",
            b"HTTP/1.1 ",
            b"HTTP/1.1 20",
            b"HTTP/1.1 2000 OK",
            b"HTTP/1.1 099 OK",
            b"HTTP/1.1 abc OK",
            b"HTTP/2 200 OK",
            b"HTTP/1.x 200 OK",
            b"HTTP/1.1  200 OK",
            b"http/1.1 200 OK",
            b"SSH-2.0-OpenSSH_9.6",
            b"\xff\xfe\x00garbage",
        ] {
            assert_eq!(
                parse_status_line(bad),
                Err(Failure::MalformedStatusLine),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn request_names_host_agent_and_close() {
        let config = CheckConfig {
            path: "/healthz?deep=1".into(),
            ..CheckConfig::default()
        };
        let v4 = request(&config, "10.0.0.7:8080".parse().unwrap()).unwrap();
        assert_eq!(
            v4,
            b"GET /healthz?deep=1 HTTP/1.1\r\nHost: 10.0.0.7:8080\r\n\
              User-Agent: shardgate-health-check\r\nConnection: close\r\n\r\n"
        );
        let v6 = request(&config, "[fe80::1%2]:80".parse().unwrap()).unwrap();
        assert!(v6.starts_with(b"GET /healthz?deep=1 HTTP/1.1\r\nHost: [fe80::1]:80\r\n"));
        let named = CheckConfig {
            host: Some("users.internal".into()),
            ..config
        };
        let named = request(&named, "10.0.0.7:8080".parse().unwrap()).unwrap();
        assert!(named.starts_with(b"GET /healthz?deep=1 HTTP/1.1\r\nHost: users.internal\r\n"));
    }

    #[test]
    fn request_refuses_what_would_split_it() {
        let addr = "10.0.0.7:8080".parse().unwrap();
        for (path, host) in [
            ("/a\r\nX: y", None),
            ("/a b", None),
            ("a", None),
            ("/", Some("")),
            ("/", Some("h\r\nX: y")),
        ] {
            let config = CheckConfig {
                path: path.into(),
                host: host.map(str::to_string),
                ..CheckConfig::default()
            };
            let failure = request(&config, addr).unwrap_err();
            assert_eq!(failure.kind(), FailureKind::Config, "{path:?} {host:?}");
        }
    }

    #[test]
    fn reasons_read_as_the_log_shows_them() {
        assert_eq!(Failure::Refused.to_string(), "connection refused");
        assert_eq!(Failure::Timeout.to_string(), "timeout");
        assert_eq!(Failure::Status(503).to_string(), "status 503");
    }
}
