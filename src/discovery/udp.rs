//! Asking one nameserver, over UDP on a blocking socket, for the A and AAAA records of a name,
//! within a deadline. Blocking is the point: this runs on the resolver's threads (or the
//! reload thread), never on a shard, and needs no runtime of its own.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::dns::{self, RecordType, ResponseError};

/// Without EDNS a UDP answer is at most 512 bytes (RFC 1035 §4.2.1); a larger buffer costs
/// nothing and lets a server that sends more anyway be read rather than cut.
const RECV_BUFFER: usize = 4096;

/// One question in flight and its outcome once a matching response came.
struct Question {
    kind: RecordType,
    id: u16,
    packet: Vec<u8>,
    answer: Option<Result<Vec<IpAddr>, ResponseError>>,
}

/// The addresses `server` gives for `name`, A records first. Both questions must be answered
/// by `deadline`: a set with one family missing would look like a change that is not one.
pub fn lookup(server: SocketAddr, name: &str, deadline: Instant) -> Result<Vec<IpAddr>, String> {
    let unspecified = match server {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let socket =
        UdpSocket::bind((unspecified, 0)).map_err(|e| format!("cannot open a UDP socket: {e}"))?;
    // Connected, so the kernel drops datagrams from anyone but the server, and an ICMP
    // "port unreachable" comes back as an error instead of a wait until the deadline.
    socket
        .connect(server)
        .map_err(|e| format!("cannot reach {server}: {e}"))?;

    let first = random_id();
    let mut questions = Vec::with_capacity(2);
    for (kind, id) in [
        (RecordType::A, first),
        (RecordType::Aaaa, first.wrapping_add(1)),
    ] {
        questions.push(Question {
            kind,
            id,
            packet: dns::query(id, name, kind)?,
            answer: None,
        });
    }
    let send = |questions: &[Question]| -> Result<(), String> {
        for q in questions.iter().filter(|q| q.answer.is_none()) {
            socket
                .send(&q.packet)
                .map_err(|e| format!("cannot send to {server}: {e}"))?;
        }
        Ok(())
    };
    send(&questions)?;
    // UDP may lose a datagram: ask again once, halfway to the deadline.
    let mut resend = Some(Instant::now() + deadline.saturating_duration_since(Instant::now()) / 2);

    let mut buf = vec![0u8; RECV_BUFFER];
    while questions.iter().any(|q| q.answer.is_none()) {
        let now = Instant::now();
        if now >= deadline {
            return Err(format!("no answer from {server} in time"));
        }
        if resend.is_some_and(|at| now >= at) {
            resend = None;
            send(&questions)?;
        }
        let wake = resend.map_or(deadline, |at| at.min(deadline));
        // A zero read timeout is refused by std; a millisecond is as good as no wait.
        let wait = wake
            .saturating_duration_since(now)
            .max(Duration::from_millis(1));
        socket
            .set_read_timeout(Some(wait))
            .map_err(|e| format!("cannot set a read timeout: {e}"))?;
        let len = match socket.recv(&mut buf) {
            Ok(len) => len,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("{server}: {e}")),
        };
        let packet = &buf[..len];
        for q in questions.iter_mut().filter(|q| q.answer.is_none()) {
            match dns::parse_response(packet, q.id, name, q.kind) {
                Err(ResponseError::NotOurs) => {}
                outcome => q.answer = Some(outcome),
            }
        }
    }

    let mut addrs = Vec::new();
    for q in questions {
        match q.answer {
            Some(Ok(found)) => addrs.extend(found),
            Some(Err(e)) => return Err(format!("{server}: {e}")),
            None => {}
        }
    }
    Ok(addrs)
}

/// An unpredictable query id (RFC 5452 §9.2), with the socket's random source port the guard
/// against forged answers that a stub resolver can have.
fn random_id() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    /// A nameserver on a thread that hands each query to `reply` and sends back what it
    /// returns (nothing for None), for `queries` queries.
    fn server(
        queries: usize,
        reply: impl Fn(&[u8]) -> Vec<Vec<u8>> + Send + 'static,
    ) -> SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        thread::spawn(move || {
            let mut buf = [0u8; 512];
            for _ in 0..queries {
                let Ok((len, from)) = socket.recv_from(&mut buf) else {
                    return;
                };
                for packet in reply(&buf[..len]) {
                    let _ = socket.send_to(&packet, from);
                }
            }
        });
        addr
    }

    /// An answer to `query` with the given A or AAAA record data, by echoing its question.
    fn answer(query: &[u8], records: &[&[u8]]) -> Vec<u8> {
        let mut p = query.to_vec();
        p[2] |= 0x80;
        p[7] = records.len() as u8;
        let qtype = [query[query.len() - 4], query[query.len() - 3]];
        for data in records {
            p.extend_from_slice(&[0xc0, 12]);
            p.extend_from_slice(&qtype);
            p.extend_from_slice(&[0, 1, 0, 0, 0, 60, 0, data.len() as u8]);
            p.extend_from_slice(data);
        }
        p
    }

    fn is_a(query: &[u8]) -> bool {
        query[query.len() - 3] == 1
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    #[test]
    fn both_families_are_asked_and_combined() {
        let addr = server(2, |q| {
            let data: &[u8] = if is_a(q) { &[10, 0, 0, 7] } else { &[0; 16] };
            vec![answer(q, &[data])]
        });
        assert_eq!(
            lookup(addr, "api.test", soon()),
            Ok(vec!["10.0.0.7".parse().unwrap(), "::".parse().unwrap()])
        );
    }

    #[test]
    fn stray_packets_are_skipped_until_the_real_answer() {
        let addr = server(2, |q| {
            let mut wrong_id = answer(q, &[&[6, 6, 6, 6][..]]);
            wrong_id[1] ^= 0xff;
            let records: Vec<&[u8]> = if is_a(q) {
                vec![&[10, 0, 0, 8]]
            } else {
                vec![]
            };
            vec![b"garbage".to_vec(), wrong_id, answer(q, &records)]
        });
        assert_eq!(
            lookup(addr, "api.test", soon()),
            Ok(vec!["10.0.0.8".parse().unwrap()])
        );
    }

    #[test]
    fn silence_ends_at_the_deadline_and_an_error_code_at_once() {
        let silent = server(4, |_| Vec::new());
        let err = lookup(
            silent,
            "api.test",
            Instant::now() + Duration::from_millis(50),
        )
        .unwrap_err();
        assert!(err.contains("no answer"), "{err}");

        let nx = server(2, |q| {
            let mut p = answer(q, &[]);
            p[3] |= 3;
            vec![p]
        });
        let err = lookup(nx, "api.test", soon()).unwrap_err();
        assert!(err.contains("NXDOMAIN"), "{err}");
    }

    #[test]
    fn a_bad_name_is_refused_before_anything_is_sent() {
        let err = lookup("127.0.0.1:9".parse().unwrap(), "a..b", soon()).unwrap_err();
        assert!(err.contains("empty label"), "{err}");
    }
}
