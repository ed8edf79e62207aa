//! Upstream servers for the gateway to proxy to, on std::net and threads.
//!
//! `Origin::start` serves parsed requests through a handler with keep-alive;
//! `Origin::raw` hands each accepted connection to a script, for upstreams
//! that misbehave on purpose. Every request read either way is also sent to
//! a channel, so a test can assert what the upstream saw.

use std::io::{self, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use super::wire::{self, Head};

/// How long `recv` waits for the upstream to see a request.
const RECV_GUARD: Duration = Duration::from_secs(5);
/// How long a raw script waits for the gateway to close before giving up.
const CLOSE_GUARD: Duration = Duration::from_secs(30);

/// How a request body reached the upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    None,
    Length,
    Chunked,
}

#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
    pub framing: BodyFraming,
    /// Index of the upstream connection it came on (0 = first accepted).
    pub conn: usize,
    pub raw_head: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        wire::values(&self.headers, name).first().copied()
    }

    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        wire::values(&self.headers, name)
    }

    /// The comma-joined value of a list header, across repeated fields.
    pub fn joined(&self, name: &str) -> Option<String> {
        wire::joined(&self.headers, name)
    }

    pub fn has_header(&self, name: &str) -> bool {
        !self.headers_named(name).is_empty()
    }

    fn wants_close(&self) -> bool {
        wire::has_token(&self.headers, "connection", "close")
            || (self.version == "HTTP/1.0"
                && !wire::has_token(&self.headers, "connection", "keep-alive"))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    ContentLength,
    /// Chunked, in chunks of at most this many bytes.
    Chunked(usize),
    /// No length: the body ends when the origin closes the connection.
    Close,
}

/// What an origin answers.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub framing: Framing,
    /// Interim (1xx) responses sent before the final one.
    pub interim: Vec<(u16, Vec<(String, String)>)>,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            framing: Framing::ContentLength,
            interim: Vec::new(),
        }
    }

    pub fn ok(body: impl Into<Vec<u8>>) -> Reply {
        Reply::status(200).body(body)
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Reply {
        self.body = body.into();
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn chunked(self) -> Reply {
        self.chunked_by(16 * 1024)
    }

    pub fn chunked_by(mut self, size: usize) -> Reply {
        self.framing = Framing::Chunked(size);
        self
    }

    pub fn close_delimited(mut self) -> Reply {
        self.framing = Framing::Close;
        self
    }

    pub fn interim(mut self, status: u16, headers: &[(&str, &str)]) -> Reply {
        let headers = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        self.interim.push((status, headers));
        self
    }

    /// The bytes of this reply as an answer to a request with `method`.
    pub fn encode(&self, method: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for (status, headers) in &self.interim {
            out.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", reason(*status)).as_bytes());
            for (n, v) in headers {
                out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
            }
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(
            format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status)).as_bytes(),
        );
        for (n, v) in &self.headers {
            out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
        }
        let bodiless = method == "HEAD" || self.status == 204 || self.status == 304;
        let explicit_length = self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-length"));
        match self.framing {
            Framing::ContentLength
                if !explicit_length && self.status != 204 && self.status != 304 =>
            {
                out.extend_from_slice(format!("Content-Length: {}\r\n", self.body.len()).as_bytes())
            }
            Framing::Chunked(_) if !bodiless => {
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n")
            }
            _ => {}
        }
        out.extend_from_slice(b"\r\n");
        if !bodiless {
            match self.framing {
                Framing::Chunked(size) => out.extend(wire::encode_chunked(&self.body, size)),
                _ => out.extend_from_slice(&self.body),
            }
        }
        out
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        103 => "Early Hints",
        200 => "OK",
        204 => "No Content",
        304 => "Not Modified",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Whatever",
    }
}

/// One accepted upstream connection, for scripted behaviour.
pub struct RawConn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    requests: Sender<Request>,
    stop: Arc<AtomicBool>,
    /// 0 for the first connection the origin accepted, 1 for the next...
    pub index: usize,
}

impl RawConn {
    /// Reads one full request (head and body) and reports it to the test.
    /// None when the gateway closed or reset the connection first, or sent
    /// something unparsable (which the test sees as a missing request).
    pub fn read_request(&mut self) -> Option<Request> {
        let req = read_request(&mut self.reader, self.index).ok()??;
        let _ = self.requests.send(req.clone());
        Some(req)
    }

    /// Reads only a request head; the body stays unread on the socket.
    pub fn read_head(&mut self) -> Option<Head> {
        wire::read_head(&mut self.reader).ok()?
    }

    /// The socket itself, for scripts that need more than the helpers.
    /// Reads on it bypass bytes already buffered by `read_request`.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.writer
    }

    /// Writes bytes, ignoring a gateway that already went away.
    pub fn write(&mut self, bytes: &[u8]) -> bool {
        self.writer
            .write_all(bytes)
            .and_then(|_| self.writer.flush())
            .is_ok()
    }

    pub fn reply(&mut self, req: &Request, reply: &Reply) -> bool {
        self.write(&reply.encode(&req.method))
    }

    /// Closes the connection at once (FIN; unread data makes it a reset).
    pub fn close(self) {
        let _ = self.writer.shutdown(Shutdown::Both);
    }

    /// Aborts the connection with a reset (SO_LINGER 0).
    pub fn reset(self) {
        use std::os::fd::AsRawFd;
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: valid socket fd and a correctly sized linger option.
        unsafe {
            libc::setsockopt(
                self.writer.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
        drop(self);
    }

    /// Holds the connection open without reading from it, until the test is
    /// over (the origin is dropped) or a long guard passes.
    pub fn stall(self) {
        let until = std::time::Instant::now() + CLOSE_GUARD;
        while !self.stop.load(Ordering::SeqCst) && std::time::Instant::now() < until {
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stalls: keeps the connection open, discarding anything received,
    /// until the gateway closes it.
    pub fn wait_for_close(mut self) {
        let _ = self.writer.set_read_timeout(Some(CLOSE_GUARD));
        let mut sink = Vec::new();
        let _ = wire::read_until_eof(&mut self.reader, &mut sink);
    }
}

pub struct Origin {
    addr: SocketAddr,
    requests: Mutex<Receiver<Request>>,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Origin {
    /// An upstream with keep-alive that answers every request with `handler`.
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Origin {
        Origin::try_start_on("127.0.0.1:0".parse().unwrap(), handler).unwrap()
    }

    /// [`Origin::start`] on a given address, e.g. another loopback address with the port of
    /// an origin already running; fails when that address is taken.
    pub fn try_start_on(
        addr: SocketAddr,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> io::Result<Origin> {
        Origin::try_raw_on(addr, move |mut conn| {
            while let Some(req) = conn.read_request() {
                let reply = handler(&req);
                let closes = req.wants_close()
                    || reply.framing == Framing::Close
                    || wire::has_token(&reply.headers, "connection", "close");
                if !conn.reply(&req, &reply) || closes {
                    break;
                }
            }
            conn.close();
        })
    }

    /// Answers 200 with the request target as the body.
    pub fn echo_target() -> Origin {
        Origin::start(|req| Reply::ok(req.target.clone()))
    }

    /// Echoes the target, holding `/slow` until `gate` opens: a request kept in flight for
    /// as long as a test needs (see [`crate::common::hold`]).
    pub fn held(gate: &Gate) -> Origin {
        let gate = gate.clone();
        Origin::start(move |req| {
            if req.target == "/slow" {
                gate.wait();
            }
            Reply::ok(req.target.clone())
        })
    }

    /// Answers 200 with the request body as the body.
    pub fn echo_body() -> Origin {
        Origin::start(|req| Reply::ok(req.body.clone()))
    }

    /// Answers 200 with a fixed body, e.g. its name in balancing tests.
    pub fn named(name: &'static str) -> Origin {
        Origin::start(move |_| Reply::ok(name))
    }

    /// Runs `script` on each accepted connection, in its own thread.
    pub fn raw(script: impl Fn(RawConn) + Send + Sync + 'static) -> Origin {
        Origin::try_raw_on("127.0.0.1:0".parse().unwrap(), script).unwrap()
    }

    /// [`Origin::raw`] on a given address.
    pub fn try_raw_on(
        addr: SocketAddr,
        script: impl Fn(RawConn) + Send + Sync + 'static,
    ) -> io::Result<Origin> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let (tx, rx) = mpsc::channel();
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let script = Arc::new(script);
        {
            let connections = connections.clone();
            let stop = stop.clone();
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let index = connections.fetch_add(1, Ordering::SeqCst);
                    let _ = stream.set_nodelay(true);
                    let _ = stream.set_read_timeout(Some(CLOSE_GUARD));
                    let conn = RawConn {
                        writer: stream.try_clone().unwrap(),
                        reader: BufReader::new(stream),
                        requests: tx.clone(),
                        stop: stop.clone(),
                        index,
                    };
                    let script = script.clone();
                    thread::spawn(move || script(conn));
                }
            });
        }
        Ok(Origin {
            addr,
            requests: Mutex::new(rx),
            connections,
            stop,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many connections the gateway opened to this origin so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// The next request this origin read (guarded).
    pub fn recv(&self) -> Request {
        match self.requests.lock().unwrap().recv_timeout(RECV_GUARD) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => {
                panic!(
                    "upstream {} saw no request within {RECV_GUARD:?}",
                    self.addr
                )
            }
            Err(RecvTimeoutError::Disconnected) => unreachable!("origin accept loop ended"),
        }
    }

    /// Asserts that no (complete) request reached this origin so far.
    /// Call it after the client saw the outcome that forbids forwarding.
    pub fn assert_no_request(&self) {
        if let Ok(req) = self.requests.lock().unwrap().try_recv() {
            panic!(
                "upstream {} should not have seen a request, got {} {} with {} body bytes",
                self.addr,
                req.method,
                req.target,
                req.body.len()
            );
        }
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Reads one request: head, then a body by Transfer-Encoding or Content-Length.
pub fn read_request<R: io::BufRead>(r: &mut R, conn: usize) -> io::Result<Option<Request>> {
    let Some(head) = wire::read_head(r)? else {
        return Ok(None);
    };
    let mut parts = head.start_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad request line {:?}", head.start_line),
        ));
    };
    let mut req = Request {
        method: method.to_string(),
        target: target.to_string(),
        version: version.to_string(),
        headers: head.headers,
        body: Vec::new(),
        trailers: Vec::new(),
        framing: BodyFraming::None,
        conn,
        raw_head: head.raw,
    };
    if wire::has_token(&req.headers, "transfer-encoding", "chunked") {
        let (body, trailers) = wire::read_chunked(r)?;
        req.body = body;
        req.trailers = trailers;
        req.framing = BodyFraming::Chunked;
    } else if let Some(len) = wire::content_length(&req.headers)? {
        req.body = wire::read_exact_vec(r, len)?;
        req.framing = BodyFraming::Length;
    }
    Ok(Some(req))
}

/// A latch for origin handlers: requests wait on it until the test opens it,
/// so a test can hold a request in flight for as long as it needs. Waiting is
/// guarded, so a failed test never leaves a handler blocked for good.
#[derive(Clone, Default)]
pub struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    pub fn new() -> Gate {
        Gate::default()
    }

    /// Lets every waiting and future request through.
    pub fn open(&self) {
        *self.0 .0.lock().unwrap() = true;
        self.0 .1.notify_all();
    }

    /// Blocks until the gate opens (or a long guard passes).
    pub fn wait(&self) {
        let (open, changed) = &*self.0;
        let guard = open.lock().unwrap();
        let _unused = changed
            .wait_timeout_while(guard, CLOSE_GUARD, |open| !*open)
            .unwrap();
    }
}
