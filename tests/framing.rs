//! Strict request framing (RFC 9112): every violation is answered with the
//! right status by the gateway itself and never reaches the upstream.

mod common;

use common::*;
use std::io::Write;
use std::thread;

/// A gateway proxying everything to an origin that echoes request bodies.
fn setup(driver: &str) -> (Gateway, Origin) {
    let origin = Origin::echo_body();
    let gw = Conf::new(driver)
        .upstream("echo", &[origin.addr()])
        .proxy_all("echo")
        .start();
    (gw, origin)
}

/// Sends `request` on a fresh connection and checks that the gateway answers
/// with one of `statuses` on its own, optionally closing the connection, and
/// that nothing reached the upstream.
fn assert_rejected(gw: &Gateway, origin: &Origin, request: &[u8], statuses: &[u16], closes: bool) {
    let mut client = Client::connect(gw.addr());
    client.send(request);
    let resp = client.read_response();
    assert!(
        statuses.contains(&resp.status),
        "request {:?}\n answered {} {}, expected one of {statuses:?}",
        String::from_utf8_lossy(request),
        resp.status,
        resp.reason
    );
    resp.assert_generated();
    if closes {
        client.expect_closed();
    }
    origin.assert_no_request();
}

#[test]
fn a_valid_request_is_forwarded() {
    for_each_driver(|driver| {
        let (gw, origin) = setup(driver);
        let mut client = Client::connect(gw.addr());
        client.send(b"POST /x HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello");
        let resp = client.read_response();
        assert_eq!((resp.status, resp.body_str().as_str()), (200, "hello"));
        let seen = origin.recv();
        assert_eq!((seen.method.as_str(), seen.target.as_str()), ("POST", "/x"));
        assert_eq!(seen.body, b"hello");
    });
}

#[test]
fn content_length_with_transfer_encoding_is_400_and_close() {
    for_each_driver(|driver| {
        let (gw, origin) = setup(driver);
        assert_rejected(
            &gw,
            &origin,
            b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            &[400],
            true,
        );
        // Order does not matter.
        assert_rejected(
            &gw,
            &origin,
            b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
            &[400],
            true,
        );
    });
}

#[test]
fn differing_content_lengths_are_400() {
    for_each_driver(|driver| {
        let (gw, origin) = setup(driver);
        for request in [
            &b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"[..],
            b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 5, 6\r\n\r\nhello!",
        ] {
            assert_rejected(&gw, &origin, request, &[400], true);
        }
    });
}

#[test]
fn invalid_content_length_is_400() {
    for_each_driver(|driver| {
        let (gw, origin) = setup(driver);
        for value in ["abc", "-1", "+5", "0x5", "5 5", "5.0", ""] {
            let request =
                format!("POST / HTTP/1.1\r\nHost: test\r\nContent-Length: {value}\r\n\r\nhello");
            assert_rejected(&gw, &origin, request.as_bytes(), &[400], true);
        }
    });
}

#[test]
fn transfer_encoding_must_end_in_chunked() {
    for_each_driver(|driver| {
        let (gw, origin) = setup(driver);
        // chunked not last: the length cannot be determined (RFC 9112 §6.3).
        assert_rejected(
            &gw,
            &origin,
            b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
            &[400],
            true,
        );
        // Codings the gateway does not implement: 400, or 501 (RFC 9112 §6.1).
        for coding in ["gzip", "identity", "foo"] {
            let request = format!(
                "POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: {coding}\r\n\r\n0\r\n\r\n"
            );
            assert_rejected(&gw, &origin, request.as_bytes(), &[400, 501], true);
        }
    });
}

#[test]
fn obs_fold_is_400() {
    for_each_driver(|driver| {
        let (gw, origin) = setup(driver);
        assert_rejected(
            &gw,
            &origin,
            b"GET / HTTP/1.1\r\nHost: test\r\nX-Long: part one\r\n  part two\r\n\r\n",
            &[400],
            false,
        );
        assert_rejected(
            &gw,
            &origin,
            b"GET / HTTP/1.1\r\nHost: test\r\nX-Long: part one\r\n\tpart two\r\n\r\n",
            &[400],
            false,
        );
    });
}

#[test]
fn whitespace_before_colon_is_400() {
    for_each_driver(|driver| {
        let (gw, origin) = setup(driver);
        assert_rejected(
            &gw,
            &origin,
            b"GET / HTTP/1.1\r\nHost : test\r\n\r\n",
            &[400],
            false,
        );
        assert_rejected(
            &gw,
            &origin,
            b"GET / HTTP/1.1\r\nHost: test\r\nContent-Length\t: 0\r\n\r\n",
            &[400],
            false,
        );
    });
}

#[test]
fn bare_cr_nul_and_control_bytes_in_headers_are_400() {
    for_each_driver(|driver| {
        let (gw, origin) = setup(driver);
        for request in [
            &b"GET / HTTP/1.1\r\nHost: test\r\nX-A: a\rb\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: test\r\nX-A: a\0b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: test\r\nX-A: a\x01b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: test\r\nX-A: a\x7fb\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: test\r\nX A: b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: test\r\nX\0A: b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: test\r\n: empty name\r\n\r\n",
        ] {
            assert_rejected(&gw, &origin, request, &[400], false);
        }
    });
}

#[test]
fn malformed_request_line_is_400() {
    for_each_driver(|driver| {
        let (gw, origin) = setup(driver);
        for request in [
            &b"G@T / HTTP/1.1\r\nHost: test\r\n\r\n"[..],
            b"GET /a b HTTP/1.1\r\nHost: test\r\n\r\n",
            b"GET / HTTP/1.1 extra\r\nHost: test\r\n\r\n",
            b"GET\r\nHost: test\r\n\r\n",
        ] {
            assert_rejected(&gw, &origin, request, &[400], false);
        }
    });
}

#[test]
fn http11_without_host_or_with_two_is_400() {
    for_each_driver(|driver| {
        let (gw, origin) = setup(driver);
        assert_rejected(
            &gw,
            &origin,
            b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n",
            &[400],
            false,
        );
        assert_rejected(
            &gw,
            &origin,
            b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
            &[400],
            false,
        );
        // HTTP/1.0 does not require Host.
        let mut client = Client::connect(gw.addr());
        client.send(b"GET /ten HTTP/1.0\r\n\r\n");
        assert_eq!(client.read_response().status, 200);
        assert_eq!(origin.recv().target, "/ten");
    });
}

#[test]
fn unsupported_http_versions_are_505() {
    for_each_driver(|driver| {
        let (gw, origin) = setup(driver);
        for version in ["HTTP/2.0", "HTTP/3.0", "HTTP/0.9"] {
            let request = format!("GET / {version}\r\nHost: test\r\n\r\n");
            assert_rejected(&gw, &origin, request.as_bytes(), &[505], false);
        }
    });
}

#[test]
fn http2_prior_knowledge_preface_is_505() {
    for_each_driver(|driver| {
        let (gw, origin) = setup(driver);
        assert_rejected(
            &gw,
            &origin,
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            &[505],
            false,
        );
    });
}

#[test]
fn connect_is_405() {
    for_each_driver(|driver| {
        let (gw, origin) = setup(driver);
        assert_rejected(
            &gw,
            &origin,
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
            &[405],
            false,
        );
    });
}

#[test]
fn invalid_chunk_size_is_400_and_close() {
    for_each_driver(|driver| {
        let (gw, origin) = setup(driver);
        for body in [
            &b"zz\r\nhello\r\n0\r\n\r\n"[..],
            b"-5\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
        ] {
            let mut request =
                b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            request.extend_from_slice(body);
            assert_rejected(&gw, &origin, &request, &[400], true);
        }
    });
}

#[test]
fn chunk_extensions_and_trailers_are_accepted() {
    for_each_driver(|driver| {
        let (gw, origin) = setup(driver);
        let mut client = Client::connect(gw.addr());
        client.send(
            b"POST /ext HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n\
              5;name=value\r\nhello\r\n6 ; quoted=\"a b\"\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
        );
        let resp = client.read_response();
        assert_eq!(
            (resp.status, resp.body_str().as_str()),
            (200, "hello world")
        );
        assert_eq!(origin.recv().body, b"hello world");
        // The connection is still in sync for the next request.
        assert_eq!(client.get("/next").status, 200);
    });
}

#[test]
fn head_arriving_byte_by_byte_is_parsed() {
    for_each_driver(|driver| {
        let (gw, origin) = setup(driver);
        let mut client = Client::connect(gw.addr());
        for &byte in b"POST /slow HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\n\r\nabc" {
            client.send(&[byte]);
        }
        let resp = client.read_response();
        assert_eq!((resp.status, resp.body_str().as_str()), (200, "abc"));
        assert_eq!(origin.recv().target, "/slow");
    });
}

#[test]
fn error_answer_is_readable_while_the_client_still_sends() {
    // Lingering close: the gateway must not reset the connection (which
    // would destroy its 400 in the client's receive queue) because request
    // bytes it never read are still arriving.
    for_each_driver(|driver| {
        let (gw, origin) = setup(driver);
        let mut client = Client::connect(gw.addr());
        let mut stream = client.stream();
        let writer = thread::spawn(move || {
            let _ = stream.write_all(
                b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 300000\r\nTransfer-Encoding: chunked\r\n\r\n",
            );
            let _ = stream.write_all(&vec![b'x'; 300_000]);
        });
        let resp = client.read_response();
        assert_eq!(resp.status, 400);
        writer.join().unwrap();
        origin.assert_no_request();
    });
}

#[test]
fn a_malformed_request_does_not_disturb_other_connections() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let gw = Conf::new(driver)
            .upstream("echo", &[origin.addr()])
            .proxy_all("echo")
            .start();
        let mut good = Client::connect(gw.addr());
        assert_eq!(good.get("/before").body_str(), "/before");
        // A request half sent on the good connection while another breaks.
        good.send(b"GET /during HTTP/1.1\r\nHo");
        for garbage in [
            &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: test\r\nContent-Length: x\r\n\r\n",
            b"\0\0\0\0\r\n\r\n",
        ] {
            let mut bad = Client::connect(gw.addr());
            bad.send(garbage);
            let answer = bad.read_to_eof();
            assert!(
                answer.is_empty()
                    || answer.starts_with(b"HTTP/1.1 4")
                    || answer.starts_with(b"HTTP/1.1 5"),
                "garbage answered with {:?}",
                String::from_utf8_lossy(&answer)
            );
        }
        good.send(b"st: test\r\n\r\n");
        assert_eq!(good.read_response().body_str(), "/during");
        assert_eq!(good.get("/after").body_str(), "/after");
        assert_eq!(Client::connect(gw.addr()).get("/new").body_str(), "/new");
    });
}
