//! A nameserver for the gateway's `resolver` key: on UDP, it answers A queries for any name
//! with the IPv4 addresses the test sets, AAAA queries with no records, or misbehaves on
//! command. Written from RFC 1035 alone, sharing no code with the gateway's resolver.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// How the server answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnsMode {
    /// The current address set (for AAAA: no records).
    Answer,
    /// Reads queries and never answers.
    Silent,
    /// SERVFAIL.
    ServFail,
    /// NXDOMAIN.
    NxDomain,
    /// NOERROR without a single record.
    Empty,
    /// The TC bit: "ask again over TCP".
    Truncated,
}

struct State {
    mode: DnsMode,
    addrs: Vec<Ipv4Addr>,
}

pub struct Dns {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Dns {
    /// A server on 127.0.0.1 answering with `addrs`.
    pub fn start(addrs: &[Ipv4Addr]) -> Dns {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            mode: DnsMode::Answer,
            addrs: addrs.to_vec(),
        }));
        let queries = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (state, queries, stop) = (state.clone(), queries.clone(), stop.clone());
            thread::spawn(move || {
                let mut buf = [0u8; 512];
                while let Ok((len, from)) = socket.recv_from(&mut buf) {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Some(question) = Question::parse(&buf[..len]) else {
                        continue;
                    };
                    queries.fetch_add(1, Ordering::SeqCst);
                    let (mode, addrs) = {
                        let s = state.lock().unwrap();
                        (s.mode.clone(), s.addrs.clone())
                    };
                    if let Some(reply) = question.reply(&mode, &addrs) {
                        let _ = socket.send_to(&reply, from);
                    }
                }
            });
        }
        Dns {
            addr,
            state,
            queries,
            stop,
        }
    }

    /// The `ip:port` for `resolver = "..."`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers with `addrs` from now on.
    pub fn answer(&self, addrs: &[Ipv4Addr]) {
        let mut s = self.state.lock().unwrap();
        s.mode = DnsMode::Answer;
        s.addrs = addrs.to_vec();
    }

    pub fn set_mode(&self, mode: DnsMode) {
        self.state.lock().unwrap().mode = mode;
    }

    /// Queries read so far, of any type.
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the receive loop so it sees the flag.
        if let Ok(s) = UdpSocket::bind("127.0.0.1:0") {
            let _ = s.send_to(b"stop", self.addr);
        }
    }
}

/// The parts of a query an answer repeats.
struct Question {
    id: [u8; 2],
    /// The question section as received: name, type, class.
    section: Vec<u8>,
    qtype: u16,
}

const TYPE_A: u16 = 1;

impl Question {
    fn parse(p: &[u8]) -> Option<Question> {
        if p.len() < 12 || p[2] & 0x80 != 0 || p[4..6] != [0, 1] {
            return None;
        }
        let mut at = 12;
        loop {
            let len = usize::from(*p.get(at)?);
            at += 1;
            if len == 0 {
                break;
            }
            if len > 63 {
                return None;
            }
            at += len;
        }
        let qtype = u16::from_be_bytes([*p.get(at)?, *p.get(at + 1)?]);
        let section = p.get(12..at + 4)?.to_vec();
        Some(Question {
            id: [p[0], p[1]],
            section,
            qtype,
        })
    }

    fn reply(&self, mode: &DnsMode, addrs: &[Ipv4Addr]) -> Option<Vec<u8>> {
        // QR, RD copied as set by every stub, RA.
        let (flags, records): (u16, &[Ipv4Addr]) = match mode {
            DnsMode::Silent => return None,
            DnsMode::Answer if self.qtype == TYPE_A => (0x8180, addrs),
            DnsMode::Answer | DnsMode::Empty => (0x8180, &[]),
            DnsMode::ServFail => (0x8182, &[]),
            DnsMode::NxDomain => (0x8183, &[]),
            DnsMode::Truncated => (0x8380, &[]),
        };
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&flags.to_be_bytes());
        out.extend_from_slice(&[0, 1]);
        out.extend_from_slice(&(records.len() as u16).to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(&self.section);
        for ip in records {
            // The owner is a pointer to the question's name, right after the header.
            out.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4]);
            out.extend_from_slice(&ip.octets());
        }
        Some(out)
    }
}
