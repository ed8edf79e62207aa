//! DNS messages (RFC 1035 §4) for the only questions the resolver asks: the A or AAAA records
//! of one name, class IN, over UDP. A query is built here, and a response is checked against
//! the query that was sent before anything in it is believed.
//!
//! Everything in a response comes from the network: every read is bounds-checked, name
//! compression may only point backwards (so a loop of pointers cannot be built), and a bad
//! packet is an error value, never a panic.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;

const HEADER_LEN: usize = 12;
/// RFC 1035 §2.3.4: a name is at most 255 bytes in its wire form.
const MAX_NAME_WIRE: usize = 255;
const MAX_LABEL: usize = 63;

const FLAG_QR: u16 = 0x8000;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordType {
    A,
    Aaaa,
}

impl RecordType {
    fn code(self) -> u16 {
        match self {
            RecordType::A => TYPE_A,
            RecordType::Aaaa => TYPE_AAAA,
        }
    }
}

/// Why a response gives no addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseError {
    /// Another id, not a response, or another question: not an answer to this query at all
    /// (late, stray or forged). The caller keeps waiting for the real one.
    NotOurs,
    /// The TC bit: the server had more to say than fits in UDP. The rest needs TCP, which this
    /// resolver does not speak; a partial set of addresses is not used.
    Truncated,
    /// A response code other than NOERROR (RFC 1035 §4.1.1; 3 is NXDOMAIN).
    Code(u8),
    /// The packet breaks the format where it says something we need.
    Malformed(&'static str),
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseError::NotOurs => f.write_str("not an answer to the question asked"),
            ResponseError::Truncated => {
                f.write_str("answer truncated (TC bit); answers that need TCP are not supported")
            }
            ResponseError::Code(1) => {
                f.write_str("the server says the query is malformed (FORMERR)")
            }
            ResponseError::Code(2) => f.write_str("server failure (SERVFAIL)"),
            ResponseError::Code(3) => f.write_str("no such name (NXDOMAIN)"),
            ResponseError::Code(5) => f.write_str("query refused (REFUSED)"),
            ResponseError::Code(code) => write!(f, "error response code {code}"),
            ResponseError::Malformed(why) => write!(f, "malformed answer: {why}"),
        }
    }
}

/// Checks that `name` can be asked about: letters, digits, `-` and `_` in dot-separated labels
/// of 1 to 63 bytes, 253 bytes in all, an optional final dot. Names are asked as written: no
/// search domains are appended.
pub fn check_name(name: &str) -> Result<(), String> {
    let bare = name.strip_suffix('.').unwrap_or(name);
    if bare.is_empty() {
        return Err("the name is empty".into());
    }
    // 253 written bytes are 255 in wire form: a length byte per label and the final zero.
    if bare.len() > MAX_NAME_WIRE - 2 {
        return Err(format!(
            "the name is longer than {} bytes",
            MAX_NAME_WIRE - 2
        ));
    }
    for label in bare.split('.') {
        if label.is_empty() {
            return Err(format!("{name:?} has an empty label"));
        }
        if label.len() > MAX_LABEL {
            return Err(format!(
                "a label of {name:?} is longer than {MAX_LABEL} bytes"
            ));
        }
        if let Some(c) = label
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        {
            return Err(format!("{c:?} cannot be part of a DNS name"));
        }
    }
    Ok(())
}

/// A standard query with recursion desired, for `kind` records of `name` (which must pass
/// [`check_name`]).
pub fn query(id: u16, name: &str, kind: RecordType) -> Result<Vec<u8>, String> {
    check_name(name)?;
    let mut packet = Vec::with_capacity(HEADER_LEN + name.len() + 6);
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&FLAG_RD.to_be_bytes());
    // QDCOUNT 1; no answer, authority or additional records.
    packet.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.strip_suffix('.').unwrap_or(name).split('.') {
        // check_name bounds every label by MAX_LABEL.
        packet.push(label.len() as u8);
        packet.extend_from_slice(label.as_bytes());
    }
    packet.push(0);
    packet.extend_from_slice(&kind.code().to_be_bytes());
    packet.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(packet)
}

/// The `kind` addresses a response gives for `name`, following CNAMEs within the answer
/// section. Ok with no address is a name that exists without records of that type.
///
/// Only the answer section is read: records in the authority and additional sections are not
/// what was asked, and believing them is how caches get poisoned.
pub fn parse_response(
    packet: &[u8],
    id: u16,
    name: &str,
    kind: RecordType,
) -> Result<Vec<IpAddr>, ResponseError> {
    let mut r = Reader { packet, pos: 0 };
    // Until the header and question are seen to match the query, nothing in the packet is
    // believed, its faults included: a packet that cannot be matched is someone else's.
    let not_ours = |_| ResponseError::NotOurs;
    let header_id = r.u16().map_err(not_ours)?;
    let flags = r.u16().map_err(not_ours)?;
    let questions = r.u16().map_err(not_ours)?;
    let answers = r.u16().map_err(not_ours)?;
    r.take(4).map_err(not_ours)?; // authority and additional counts
    let opcode = (flags >> 11) & 0xf;
    if header_id != id || flags & FLAG_QR == 0 || opcode != 0 || questions != 1 {
        return Err(ResponseError::NotOurs);
    }
    let asked = r.name().map_err(not_ours)?;
    let (qtype, qclass) = (r.u16().map_err(not_ours)?, r.u16().map_err(not_ours)?);
    if !same_name(&asked, name) || qtype != kind.code() || qclass != CLASS_IN {
        return Err(ResponseError::NotOurs);
    }
    if flags & FLAG_TC != 0 {
        return Err(ResponseError::Truncated);
    }
    let code = (flags & 0xf) as u8;
    if code != 0 {
        return Err(ResponseError::Code(code));
    }

    let mut records = Vec::new();
    for _ in 0..answers {
        let owner = r.name()?;
        let (rtype, rclass) = (r.u16()?, r.u16()?);
        r.u32()?; // TTL: ignored, resolve_interval decides when to ask again.
        let len = usize::from(r.u16()?);
        let start = r.pos;
        let data = r.take(len)?;
        if rclass != CLASS_IN {
            continue;
        }
        let value = match rtype {
            TYPE_CNAME => {
                // The alias may be compressed, pointing anywhere before it in the packet.
                let mut alias = Reader { packet, pos: start };
                let target = alias.name()?;
                if alias.pos != start + len {
                    return Err(ResponseError::Malformed("CNAME data of the wrong length"));
                }
                Record::Alias(target)
            }
            TYPE_A if kind == RecordType::A => match <[u8; 4]>::try_from(data) {
                Ok(octets) => Record::Address(IpAddr::V4(Ipv4Addr::from(octets))),
                Err(_) => return Err(ResponseError::Malformed("A record not 4 bytes long")),
            },
            TYPE_AAAA if kind == RecordType::Aaaa => match <[u8; 16]>::try_from(data) {
                Ok(octets) => Record::Address(IpAddr::V6(Ipv6Addr::from(octets))),
                Err(_) => return Err(ResponseError::Malformed("AAAA record not 16 bytes long")),
            },
            _ => continue,
        };
        records.push((owner, value));
    }

    // The names that stand for the one asked: itself and its aliases, in whatever order the
    // server listed the CNAME records. Each pass adds one link at least, or stops.
    let mut names: Vec<Vec<u8>> = vec![asked];
    loop {
        let before = names.len();
        for (owner, record) in &records {
            if let Record::Alias(target) = record {
                if names.contains(owner) && !names.contains(target) {
                    names.push(target.clone());
                }
            }
        }
        if names.len() == before {
            break;
        }
    }
    let mut addrs = Vec::new();
    for (owner, record) in &records {
        if let Record::Address(addr) = record {
            if names.contains(owner) && !addrs.contains(addr) {
                addrs.push(*addr);
            }
        }
    }
    Ok(addrs)
}

enum Record {
    Alias(Vec<u8>),
    Address(IpAddr),
}

/// Whether a name read from a packet (lowercased, without the final dot) is `name`.
fn same_name(read: &[u8], name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    read.eq_ignore_ascii_case(name.as_bytes())
}

/// Bounds-checked reads from a packet.
struct Reader<'a> {
    packet: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ResponseError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.packet.len())
            .ok_or(ResponseError::Malformed("the packet ends early"))?;
        let bytes = &self.packet[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn u16(&mut self) -> Result<u16, ResponseError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, ResponseError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A name (RFC 1035 §4.1.4), lowercased, labels joined by dots, no final dot; the reader
    /// ends up after the name's bytes here, whatever its pointers jumped to.
    fn name(&mut self) -> Result<Vec<u8>, ResponseError> {
        let mut name = Vec::new();
        let mut wire_len = 1; // the final zero
        let mut at = self.pos;
        // Where the reader resumes: after the first pointer, if there is one.
        let mut resume = None;
        // A pointer must point before the start of the labels that led to it; strictly
        // decreasing targets cannot loop.
        let mut floor = self.pos;
        loop {
            let len = *self
                .packet
                .get(at)
                .ok_or(ResponseError::Malformed("the packet ends inside a name"))?;
            match len & 0xc0 {
                0x00 if len == 0 => {
                    self.pos = resume.unwrap_or(at + 1);
                    return Ok(name);
                }
                0x00 => {
                    let len = usize::from(len);
                    wire_len += len + 1;
                    if wire_len > MAX_NAME_WIRE {
                        return Err(ResponseError::Malformed("a name longer than 255 bytes"));
                    }
                    let label = self
                        .packet
                        .get(at + 1..at + 1 + len)
                        .ok_or(ResponseError::Malformed("the packet ends inside a name"))?;
                    if !name.is_empty() {
                        name.push(b'.');
                    }
                    name.extend(label.iter().map(u8::to_ascii_lowercase));
                    at += 1 + len;
                }
                0xc0 => {
                    let low = *self
                        .packet
                        .get(at + 1)
                        .ok_or(ResponseError::Malformed("the packet ends inside a name"))?;
                    let target = usize::from(u16::from_be_bytes([len & 0x3f, low]));
                    if target >= floor {
                        return Err(ResponseError::Malformed(
                            "a compression pointer that does not point backwards",
                        ));
                    }
                    resume.get_or_insert(at + 2);
                    floor = target;
                    at = target;
                }
                _ => return Err(ResponseError::Malformed("a label of a reserved type")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response to `query(id, name, kind)`, built by hand: the question copied, then the
    /// given answer records, each (owner wire bytes, type, data).
    fn response(id: u16, flags: u16, question: &[u8], answers: &[(&[u8], u16, &[u8])]) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&flags.to_be_bytes());
        p.extend_from_slice(&1u16.to_be_bytes());
        p.extend_from_slice(&(answers.len() as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 0]);
        p.extend_from_slice(question);
        for (owner, rtype, data) in answers {
            p.extend_from_slice(owner);
            p.extend_from_slice(&rtype.to_be_bytes());
            p.extend_from_slice(&CLASS_IN.to_be_bytes());
            p.extend_from_slice(&300u32.to_be_bytes());
            p.extend_from_slice(&(data.len() as u16).to_be_bytes());
            p.extend_from_slice(data);
        }
        p
    }

    /// The question section of a query: everything after its header.
    fn question(name: &str, kind: RecordType) -> Vec<u8> {
        query(0, name, kind).unwrap()[HEADER_LEN..].to_vec()
    }

    /// A pointer to the question's name, which starts right after the header.
    const TO_QNAME: &[u8] = &[0xc0, HEADER_LEN as u8];
    const OK: u16 = FLAG_QR | FLAG_RD | 0x0080;

    #[test]
    fn a_query_is_laid_out_as_rfc_1035_says() {
        let q = query(0xabcd, "api.example.", RecordType::Aaaa).unwrap();
        assert_eq!(
            q,
            [
                &[0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0][..],
                b"\x03api\x07example\x00",
                &[0, 28, 0, 1],
            ]
            .concat()
        );
    }

    #[test]
    fn names_that_cannot_be_asked_are_refused() {
        for bad in [
            "",
            ".",
            "a..b",
            "has space.test",
            "ünï.test",
            &"a".repeat(64),
            &["a"; 128].join("."),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
            assert!(query(1, bad, RecordType::A).is_err(), "{bad:?}");
        }
        for good in [
            "localhost",
            "api.example.com.",
            "_svc.x-1.test",
            &"a".repeat(63),
        ] {
            assert_eq!(check_name(good), Ok(()), "{good:?}");
        }
    }

    #[test]
    fn addresses_are_read_from_the_answer_section() {
        let q = question("API.test", RecordType::A);
        let p = response(
            7,
            OK,
            &q,
            &[
                (TO_QNAME, TYPE_A, &[10, 0, 0, 1]),
                (b"\x03api\x04test\x00", TYPE_A, &[10, 0, 0, 2]),
                // A duplicate counts once.
                (TO_QNAME, TYPE_A, &[10, 0, 0, 1]),
            ],
        );
        assert_eq!(
            parse_response(&p, 7, "api.test", RecordType::A),
            Ok(vec![
                "10.0.0.1".parse().unwrap(),
                "10.0.0.2".parse().unwrap()
            ])
        );
        let q6 = question("api.test", RecordType::Aaaa);
        let p6 = response(
            8,
            OK,
            &q6,
            &[(
                TO_QNAME,
                TYPE_AAAA,
                &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            )],
        );
        assert_eq!(
            parse_response(&p6, 8, "api.test", RecordType::Aaaa),
            Ok(vec!["::1".parse().unwrap()])
        );
    }

    #[test]
    fn a_cname_chain_is_followed_in_any_order_and_strangers_are_ignored() {
        let q = question("www.test", RecordType::A);
        let p = response(
            1,
            OK,
            &q,
            &[
                (b"\x04edge\x04test\x00", TYPE_A, &[192, 0, 2, 1]),
                (b"\x04edge\x04test\x00", TYPE_CNAME, b"\x03www\x04test\x00"),
                (TO_QNAME, TYPE_CNAME, b"\x03lb1\x04test\x00"),
                (b"\x03lb1\x04test\x00", TYPE_CNAME, b"\x04edge\x04test\x00"),
                // Not reachable from www.test: someone else's record.
                (b"\x05other\x04test\x00", TYPE_A, &[203, 0, 113, 9]),
            ],
        );
        assert_eq!(
            parse_response(&p, 1, "www.test", RecordType::A),
            Ok(vec!["192.0.2.1".parse().unwrap()])
        );
    }

    #[test]
    fn no_records_is_an_empty_answer_and_codes_are_errors() {
        let q = question("api.test", RecordType::Aaaa);
        assert_eq!(
            parse_response(&response(2, OK, &q, &[]), 2, "api.test", RecordType::Aaaa),
            Ok(vec![])
        );
        let nx = response(2, OK | 3, &q, &[]);
        assert_eq!(
            parse_response(&nx, 2, "api.test", RecordType::Aaaa),
            Err(ResponseError::Code(3))
        );
        let servfail = response(2, OK | 2, &q, &[]);
        assert_eq!(
            parse_response(&servfail, 2, "api.test", RecordType::Aaaa),
            Err(ResponseError::Code(2))
        );
        let tc = response(2, OK | FLAG_TC, &q, &[(TO_QNAME, TYPE_AAAA, &[0; 16])]);
        assert_eq!(
            parse_response(&tc, 2, "api.test", RecordType::Aaaa),
            Err(ResponseError::Truncated)
        );
    }

    #[test]
    fn answers_to_another_question_are_not_ours() {
        let q = question("api.test", RecordType::A);
        let p = response(9, OK, &q, &[(TO_QNAME, TYPE_A, &[10, 0, 0, 1])]);
        assert_eq!(
            parse_response(&p, 10, "api.test", RecordType::A),
            Err(ResponseError::NotOurs)
        );
        assert_eq!(
            parse_response(&p, 9, "web.test", RecordType::A),
            Err(ResponseError::NotOurs)
        );
        assert_eq!(
            parse_response(&p, 9, "api.test", RecordType::Aaaa),
            Err(ResponseError::NotOurs)
        );
        // Our own query echoed back is not a response.
        let echo = query(9, "api.test", RecordType::A).unwrap();
        assert_eq!(
            parse_response(&echo, 9, "api.test", RecordType::A),
            Err(ResponseError::NotOurs)
        );
        // What cannot be matched to the query cannot be its answer, broken or not: a short
        // header, a question cut short.
        for cut in [&b"\x00\x09"[..], &p[..HEADER_LEN + 3]] {
            assert_eq!(
                parse_response(cut, 9, "api.test", RecordType::A),
                Err(ResponseError::NotOurs)
            );
        }
    }

    #[test]
    fn malformed_packets_are_errors_not_panics() {
        let q = question("api.test", RecordType::A);
        let good = response(3, OK, &q, &[(TO_QNAME, TYPE_A, &[10, 0, 0, 1])]);
        // Every truncation of a good answer.
        for len in 0..good.len() {
            assert!(
                parse_response(&good[..len], 3, "api.test", RecordType::A).is_err(),
                "{len}"
            );
        }
        let malformed = |p: &[u8]| {
            matches!(
                parse_response(p, 3, "api.test", RecordType::A),
                Err(ResponseError::Malformed(_))
            )
        };
        // An A record of the wrong size.
        assert!(malformed(&response(
            3,
            OK,
            &q,
            &[(TO_QNAME, TYPE_A, &[10, 0, 0])]
        )));
        // A pointer to itself, and one pointing forwards.
        assert!(malformed(&response(
            3,
            OK,
            &q,
            &[(&[0xc0, 26], TYPE_A, &[10, 0, 0, 1])]
        )));
        assert!(malformed(&response(
            3,
            OK,
            &q,
            &[(&[0xc0, 200], TYPE_A, &[10, 0, 0, 1])]
        )));
        // A loop of pointers needs one that points forwards: refused.
        let mut looped = response(3, OK, &q, &[(&[0xc0, 28], TYPE_A, &[10, 0, 0, 1])]);
        looped.extend_from_slice(&[0xc0, 26]);
        assert!(malformed(&looped));
        // A reserved label type.
        assert!(malformed(&response(
            3,
            OK,
            &q,
            &[(&[0x40], TYPE_A, &[10, 0, 0, 1])]
        )));
        // A name over 255 bytes, built from labels of 63.
        let long: Vec<u8> = [&[63u8][..], &[b'a'; 63]].concat().repeat(5);
        assert!(malformed(&response(
            3,
            OK,
            &q,
            &[(&[&long[..], &[0]].concat(), TYPE_A, &[10, 0, 0, 1])]
        )));
        // More answers announced than present.
        let mut short = good.clone();
        short[7] = 2;
        assert!(malformed(&short));
        // A CNAME whose data is longer than its name.
        assert!(malformed(&response(
            3,
            OK,
            &q,
            &[(TO_QNAME, TYPE_CNAME, b"\x01x\x00junk")]
        )));
    }

    #[test]
    fn random_bytes_never_panic() {
        let q = query(5, "api.test", RecordType::A).unwrap();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            // Our header and question, so parsing goes past the checks, then noise.
            let mut p = q.clone();
            p[2] |= 0x80;
            p[7] = (next() % 8) as u8;
            let extra = (next() % 64) as usize;
            p.extend((0..extra).map(|_| next() as u8));
            let _ = parse_response(&p, 5, "api.test", RecordType::A);
            let noise: Vec<u8> = (0..(next() % 80)).map(|_| next() as u8).collect();
            let _ = parse_response(&noise, 5, "api.test", RecordType::A);
        }
    }
}
