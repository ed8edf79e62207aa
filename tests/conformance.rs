//! Conformance with RFC 9110 / RFC 9112 as a reverse proxy sees them, and with what nginx,
//! HAProxy and Envoy agree on where the RFCs leave a choice. Each test names the rule it pins.
//!
//! Where the RFC allows two answers (reject, or repair and forward), a test accepts both and
//! asserts only what every choice shares: nothing ambiguous reaches the other side.

mod common;

use common::*;

/// A gateway sending every request to `origin`.
fn through(driver: &str, origin: &Origin) -> Gateway {
    Conf::new(driver)
        .upstream("o", &[origin.addr()])
        .proxy_all("o")
        .start()
}

/// Sends `request` on a fresh connection and returns the first final response.
fn exchange(gw: &Gateway, request: &[u8]) -> (Client, Response) {
    let mut client = Client::connect(gw.addr());
    client.send(request);
    let resp = client.read_response();
    (client, resp)
}

/// The gateway answers `request` itself with one of `statuses` (with Date and Server),
/// optionally closes, and the upstream never sees a complete request.
fn assert_refused(gw: &Gateway, origin: &Origin, request: &[u8], statuses: &[u16], closes: bool) {
    let (mut client, resp) = exchange(gw, request);
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

// ---------------------------------------------------------------------------------------------
// Request framing: RFC 9112 §6 and §7, request smuggling variants.
// ---------------------------------------------------------------------------------------------

/// RFC 9112 §6.1/§6.3: a Transfer-Encoding whose final coding is not chunked cannot be framed;
/// two TE lines are one list (`chunked, identity`). nginx answers 400.
#[test]
fn transfer_encoding_chunked_then_identity_is_refused() {
    for_each_driver(|driver| {
        let origin = Origin::echo_body();
        let gw = through(driver, &origin);
        for te in [
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
            "Transfer-Encoding: chunked, identity\r\n",
            "Transfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        ] {
            let request =
                format!("POST / HTTP/1.1\r\nHost: test\r\n{te}\r\n5\r\nhello\r\n0\r\n\r\n");
            assert_refused(&gw, &origin, request.as_bytes(), &[400, 501], true);
        }
    });
}

/// RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing (the 1.0
/// sender cannot have meant chunked); nginx answers 400. It is never forwarded, and the
/// connection closes.
#[test]
fn http10_request_with_transfer_encoding_is_refused() {
    for_each_driver(|driver| {
        let origin = Origin::echo_body();
        let gw = through(driver, &origin);
        for extra in ["", "Content-Length: 5\r\n", "Connection: keep-alive\r\n"] {
            let request = format!(
                "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n{extra}\r\n5\r\nhello\r\n0\r\n\r\n"
            );
            assert_refused(&gw, &origin, request.as_bytes(), &[400], true);
        }
    });
}

/// RFC 9110 §5.5: a field value holds no CTL but HTAB; a VT or FF next to `chunked` is not
/// whitespace, and `"chunked"` or `xchunked` is another coding. None of them may be read as
/// chunked (the classic TE.CL desync), nor forwarded.
#[test]
fn transfer_encoding_lookalikes_are_refused() {
    for_each_driver(|driver| {
        let origin = Origin::echo_body();
        let gw = through(driver, &origin);
        for value in [
            &b"\x0bchunked"[..],
            b"chunked\x0b",
            b"\x0cchunked",
            b"\"chunked\"",
            b"xchunked",
            b"chunked;q=1",
            b"chunk",
        ] {
            let mut request = b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: ".to_vec();
            request.extend_from_slice(value);
            request.extend_from_slice(b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
            assert_refused(&gw, &origin, &request, &[400, 501], true);
        }
    });
}

/// RFC 9110 §5.5 and §5.6.3: OWS (SP, HTAB) around a field value is not part of it, and
/// list elements may be empty: these are all plain `chunked`.
#[test]
fn transfer_encoding_with_optional_whitespace_is_chunked() {
    for_each_driver(|driver| {
        let origin = Origin::echo_body();
        let gw = through(driver, &origin);
        for te in [
            "chunked ",
            "\tchunked",
            "  chunked\t ",
            "CHUNKED",
            ", chunked",
        ] {
            let request = format!(
                "POST /te HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: {te}\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
            );
            let (mut client, resp) = exchange(&gw, request.as_bytes());
            assert_eq!(
                (resp.status, resp.body_str().as_str()),
                (200, "hello"),
                "Transfer-Encoding: {te:?}"
            );
            assert_eq!(origin.recv().body, b"hello", "Transfer-Encoding: {te:?}");
            // The body was consumed exactly: the connection is in sync.
            assert_eq!(
                client.get("/after").status,
                200,
                "Transfer-Encoding: {te:?}"
            );
            origin.recv();
        }
    });
}

/// RFC 9110 §8.6: Content-Length = 1*DIGIT, so leading zeros are allowed (nginx, HAProxy and
/// Envoy accept `005`). The forwarded length is the value, 5.
#[test]
fn content_length_with_leading_zeros_is_its_value() {
    for_each_driver(|driver| {
        let origin = Origin::echo_body();
        let gw = through(driver, &origin);
        for value in ["005", "0005", "05"] {
            let request =
                format!("POST /cl HTTP/1.1\r\nHost: test\r\nContent-Length: {value}\r\n\r\nhello");
            let (mut client, resp) = exchange(&gw, request.as_bytes());
            assert_eq!(
                (resp.status, resp.body_str().as_str()),
                (200, "hello"),
                "Content-Length: {value}"
            );
            let seen = origin.recv();
            assert_eq!(seen.body, b"hello");
            assert_eq!(seen.headers_named("content-length"), ["5"]);
            assert_eq!(client.get("/after").status, 200);
            origin.recv();
        }
    });
}

/// RFC 9110 §8.6: 1*DIGIT has no length bound, and the RFC asks recipients to guard against
/// overflow, not against long numerals: twenty zero-padded digits still say 5 (nginx's
/// ngx_atoof and HAProxy's parser both accept it).
#[test]
fn content_length_with_twenty_digits_of_zero_padding_is_its_value() {
    for_each_driver(|driver| {
        let origin = Origin::echo_body();
        let gw = through(driver, &origin);
        let request =
            b"POST /cl HTTP/1.1\r\nHost: test\r\nContent-Length: 00000000000000000005\r\n\r\nhello";
        let (_client, resp) = exchange(&gw, request);
        assert_eq!(
            (resp.status, resp.body_str().as_str()),
            (200, "hello"),
            "Content-Length: 00000000000000000005 is 5"
        );
        assert_eq!(origin.recv().body, b"hello");
    });
}

/// RFC 9110 §5.1: field-name = token. Separators and non-ASCII bytes make the field invalid
/// and the message with it (400): forwarding them lets a laxer upstream read another name.
#[test]
fn header_names_with_non_token_bytes_are_400() {
    for_each_driver(|driver| {
        let origin = Origin::echo_body();
        let gw = through(driver, &origin);
        for name in [
            &b"X\"Y"[..],
            b"X(Y",
            b"X)Y",
            b"X/Y",
            b"X[Y",
            b"X]Y",
            b"X{Y",
            b"X}Y",
            b"X@Y",
            b"X,Y",
            b"X;Y",
            b"X=Y",
            b"X?Y",
            b"X\\Y",
            b"X\x80Y",
            b"Content-Length\x0b",
            b"\x0bContent-Length",
        ] {
            let mut request = b"GET / HTTP/1.1\r\nHost: test\r\n".to_vec();
            request.extend_from_slice(name);
            request.extend_from_slice(b": 1\r\n\r\n");
            assert_refused(&gw, &origin, &request, &[400], false);
        }
    });
}

/// RFC 9112 §2.2: whitespace between the start line and the first field line must either
/// reject the message or make the recipient ignore that line. Either way `evil` never
/// becomes the Host (nginx: 400).
#[test]
fn whitespace_before_the_first_field_line_never_becomes_a_field() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let gw = through(driver, &origin);
        let (_client, resp) = exchange(
            &gw,
            b"GET /ws HTTP/1.1\r\n Host: evil.test\r\nHost: good.test\r\n\r\n",
        );
        if resp.status == 400 {
            resp.assert_generated();
            origin.assert_no_request();
        } else {
            assert_eq!(resp.status, 200);
            let seen = origin.recv();
            assert_eq!(seen.headers_named("host"), ["good.test"]);
            assert!(
                !String::from_utf8_lossy(&seen.raw_head).contains("evil"),
                "the whitespace-led line was forwarded: {:?}",
                String::from_utf8_lossy(&seen.raw_head)
            );
        }
    });
}

/// RFC 9112 §2.2: a recipient MAY take a bare LF as a line end (nginx does). If the gateway
/// does, what it forwards must be plain CRLF HTTP: no bare LF reaches the upstream.
#[test]
fn lf_only_head_is_refused_or_forwarded_as_crlf() {
    for_each_driver(|driver| {
        let origin = Origin::echo_body();
        let gw = through(driver, &origin);
        for request in [
            &b"POST /lf HTTP/1.1\nHost: test\nContent-Length: 5\n\nhello"[..],
            b"POST /lf HTTP/1.1\r\nHost: test\nX-Mixed: 1\r\nContent-Length: 5\r\n\r\nhello",
        ] {
            let (_client, resp) = exchange(&gw, request);
            if resp.status == 400 {
                origin.assert_no_request();
                continue;
            }
            assert_eq!(resp.status, 200, "{:?}", String::from_utf8_lossy(request));
            assert_eq!(resp.body_str(), "hello");
            let seen = origin.recv();
            assert_eq!(seen.body, b"hello");
            let head = &seen.raw_head;
            let bare_lf = head
                .iter()
                .enumerate()
                .any(|(i, &b)| b == b'\n' && (i == 0 || head[i - 1] != b'\r'));
            assert!(
                !bare_lf,
                "a bare LF was forwarded upstream: {:?}",
                String::from_utf8_lossy(head)
            );
        }
    });
}

/// RFC 9112 §7.1: chunk-size = 1*HEXDIG, then optional extensions, then CRLF. A `0x` prefix,
/// a sign, whitespace before the size, whitespace not followed by `;`, or a size past 64 bits
/// are framing errors: 400 and close, nothing forwarded.
#[test]
fn malformed_chunk_size_lines_are_400_and_close() {
    for_each_driver(|driver| {
        let origin = Origin::echo_body();
        let gw = through(driver, &origin);
        for body in [
            &b"0x5\r\nhello\r\n0\r\n\r\n"[..],
            b"+5\r\nhello\r\n0\r\n\r\n",
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"5 \r\nhello\r\n0\r\n\r\n",
            b"5\x00\r\nhello\r\n0\r\n\r\n",
            b"10000000000000005\r\nhello\r\n0\r\n\r\n",
            b"5;a\rb\r\nhello\r\n0\r\n\r\n",
            b"5;a\x00\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhello\r\n0\r\n",
        ] {
            let mut request =
                b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            request.extend_from_slice(body);
            let complete = !body.ends_with(b"0\r\n");
            if complete {
                assert_refused(&gw, &origin, &request, &[400], true);
            } else {
                // A body missing its final CRLF: the gateway waits for it; a close then must
                // not deliver a complete request upstream.
                let mut client = Client::connect(gw.addr());
                client.send(&request);
                client.shutdown_write();
                let answer = client.read_to_eof();
                assert!(
                    answer.is_empty() || answer.starts_with(b"HTTP/1.1 4"),
                    "{:?}",
                    String::from_utf8_lossy(&answer)
                );
                origin.assert_no_request();
            }
        }
    });
}

/// RFC 9112 §7.1.1/§2.2: a bare LF in a chunk line MAY be accepted as a line end; if it is,
/// the upstream must still see exactly the body the client meant ("hello").
#[test]
fn lf_only_chunk_lines_are_refused_or_decoded_exactly() {
    for_each_driver(|driver| {
        let origin = Origin::echo_body();
        let gw = through(driver, &origin);
        for body in [
            &b"5;ext\nhello\r\n0\r\n\r\n"[..],
            b"5\nhello\n0\n\n",
            b"5\r\nhello\n0\r\n\r\n",
        ] {
            let mut request =
                b"POST /lf HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            request.extend_from_slice(body);
            let (_client, resp) = exchange(&gw, &request);
            if resp.status == 400 {
                origin.assert_no_request();
            } else {
                assert_eq!(
                    (resp.status, resp.body_str().as_str()),
                    (200, "hello"),
                    "{:?}",
                    String::from_utf8_lossy(body)
                );
                assert_eq!(origin.recv().body, b"hello");
            }
        }
    });
}

/// RFC 9112 §7.1.2: trailer fields are field lines; one without a colon or an obs-fold in the
/// trailer section is a broken message (400, close), never passed on.
#[test]
fn malformed_trailer_section_is_400() {
    for_each_driver(|driver| {
        let origin = Origin::echo_body();
        let gw = through(driver, &origin);
        for trailer in [
            &b"0\r\nno colon here\r\n\r\n"[..],
            b"0\r\nX-T: a\r\n folded\r\n\r\n",
            b"0\r\nX T: a\r\n\r\n",
            b"0\r\nX-T: a\rb\r\n\r\n",
        ] {
            let mut request =
                b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
                    .to_vec();
            request.extend_from_slice(trailer);
            assert_refused(&gw, &origin, &request, &[400], true);
        }
    });
}

/// RFC 9112 §2.2: a server SHOULD ignore at least one empty line before a request line, which
/// older clients send after a POST body. Both requests are answered, in order.
#[test]
fn empty_line_after_a_body_before_the_next_request_is_ignored() {
    for_each_driver(|driver| {
        let origin = Origin::start(|req| {
            if req.body.is_empty() {
                Reply::ok(req.target.clone())
            } else {
                Reply::ok(req.body.clone())
            }
        });
        let gw = through(driver, &origin);
        let mut client = Client::connect(gw.addr());
        client.send(
            b"POST /p HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello\r\n\
              GET /q HTTP/1.1\r\nHost: test\r\n\r\n",
        );
        assert_eq!(client.read_response().body_str(), "hello");
        assert_eq!(client.read_response().body_str(), "/q");
    });
}
