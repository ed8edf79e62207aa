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

/// An upstream that answers every request on a connection with the bytes `answer` builds, and
/// keeps the connection open (so a connection wrongly pooled would be reused).
fn scripted(answer: impl Fn(&Request) -> Vec<u8> + Send + Sync + 'static) -> Origin {
    Origin::raw(move |mut conn| {
        while let Some(req) = conn.read_request() {
            if !conn.write(&answer(&req)) {
                break;
            }
        }
    })
}

/// An upstream that answers one request with `answer`, then closes (close-delimited bodies).
fn answers_then_closes(answer: &'static [u8]) -> Origin {
    Origin::raw(move |mut conn| {
        if conn.read_request().is_some() {
            conn.write(answer);
        }
        conn.close();
    })
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

/// A response head the client can find the end of: Content-Length, chunked, or a close.
fn assert_delimited(resp: &Response, what: &str) {
    let chunked = resp
        .headers_named("transfer-encoding")
        .iter()
        .any(|v| v.to_ascii_lowercase().contains("chunked"));
    let closes = resp
        .headers_named("connection")
        .iter()
        .any(|v| v.eq_ignore_ascii_case("close"));
    assert!(
        resp.has_header("content-length") || chunked || closes,
        "{what}: a keep-alive response without Content-Length or chunked framing; the client \
         cannot tell where its body ends:\n{}",
        String::from_utf8_lossy(&resp.raw_head)
    );
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

// ---------------------------------------------------------------------------------------------
// Keep-alive and pipelining: RFC 9112 §9.3.
// ---------------------------------------------------------------------------------------------

/// RFC 9112 §9.3.2: pipelined requests are answered in order; once one is refused and the
/// connection closed, the answers before it are still delivered and nothing after it is read
/// as a request (nginx does exactly this).
#[test]
fn pipelined_requests_after_a_malformed_one_are_not_processed() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let gw = through(driver, &origin);
        for bad in [
            &b"GET /b HTTP/1.1\r\nHost: test\r\nContent-Length: x\r\n\r\n"[..],
            b"GET /b HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            b"POST /b HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"GET /b HTTP/1.1\r\nHost: test\r\nHost: other\r\n\r\n",
        ] {
            let mut client = Client::connect(gw.addr());
            let mut burst = b"GET /a HTTP/1.1\r\nHost: test\r\n\r\n".to_vec();
            burst.extend_from_slice(bad);
            burst.extend_from_slice(b"GET /c HTTP/1.1\r\nHost: test\r\n\r\n");
            client.send(&burst);
            let first = client.read_response();
            assert_eq!((first.status, first.body_str().as_str()), (200, "/a"));
            let second = client.read_response();
            assert_eq!(
                second.status,
                400,
                "after {:?}",
                String::from_utf8_lossy(bad)
            );
            second.assert_generated();
            client.expect_closed();
            assert_eq!(origin.recv().target, "/a");
            origin.assert_no_request();
        }
    });
}

/// RFC 9112 §9.6: the response to a request carrying `Connection: close` SHOULD say close,
/// and the server closes after it, whether the route is proxied or direct.
#[test]
fn response_to_connection_close_says_close() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let gw = Conf::new(driver)
            .upstream("o", &[origin.addr()])
            .direct("direct", "path = \"/direct\"", "direct")
            .proxy_all("o")
            .start();
        for path in ["/direct", "/proxied", "/missing%zz"] {
            let (mut client, resp) = exchange(
                &gw,
                format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
            assert!(
                resp.headers_named("connection")
                    .iter()
                    .any(|v| v.eq_ignore_ascii_case("close")),
                "GET {path}: no Connection: close in {:?}",
                resp.headers
            );
            client.expect_closed();
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Request targets: RFC 9112 §3.2, RFC 3986.
// ---------------------------------------------------------------------------------------------

/// RFC 9112 §3.2.2: a proxy receiving an absolute-form target MUST ignore the Host field and
/// generate a new Host from the target; the upstream gets origin-form. Routing uses the
/// target's authority too.
#[test]
fn absolute_form_target_replaces_the_host_field() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let gw = Conf::new(driver)
            .upstream("o", &[origin.addr()])
            .route("named", "hosts = [\"other.test\"]\nupstream = \"o\"")
            .direct("any", "", "wrong route")
            .start();
        let (_client, resp) = exchange(
            &gw,
            b"GET http://other.test:8080/abs/x?q=1 HTTP/1.1\r\nHost: client.test\r\n\r\n",
        );
        assert_eq!((resp.status, resp.body_str().as_str()), (200, "/abs/x?q=1"));
        let seen = origin.recv();
        assert_eq!(seen.target, "/abs/x?q=1");
        assert_eq!(seen.headers_named("host"), ["other.test:8080"]);
        assert!(
            !String::from_utf8_lossy(&seen.raw_head).contains("client.test"),
            "the ignored Host leaked upstream: {:?}",
            String::from_utf8_lossy(&seen.raw_head)
        );

        // Scheme and host are case-insensitive (RFC 3986 §3.1, §3.2.2).
        let (_client, resp) = exchange(
            &gw,
            b"GET HTTP://OTHER.TEST/upper HTTP/1.1\r\nHost: client.test\r\n\r\n",
        );
        assert_eq!((resp.status, resp.body_str().as_str()), (200, "/upper"));
        origin.recv();
    });
}

/// RFC 9112 §3.2.1: an empty path is sent as "/" in origin-form, query kept.
#[test]
fn absolute_form_without_a_path_is_forwarded_as_slash() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let gw = through(driver, &origin);
        for (target, forwarded) in [
            ("http://a.test", "/"),
            ("http://a.test:81", "/"),
            ("http://a.test?x=1", "/?x=1"),
        ] {
            let request = format!("GET {target} HTTP/1.1\r\nHost: a.test\r\n\r\n");
            let (_client, resp) = exchange(&gw, request.as_bytes());
            assert_eq!(
                (resp.status, resp.body_str().as_str()),
                (200, forwarded),
                "GET {target}"
            );
            origin.recv();
        }
    });
}

/// RFC 9110 §4.2.4: a recipient SHOULD treat userinfo in an http(s) URI as an error; it is a
/// classic way to make the proxy and the upstream disagree on the host (nginx: 400).
#[test]
fn absolute_form_with_userinfo_is_400() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let gw = through(driver, &origin);
        for target in [
            "http://user@a.test/x",
            "http://user:pw@a.test/x",
            "http://a.test@b.test/x",
        ] {
            let request = format!("GET {target} HTTP/1.1\r\nHost: a.test\r\n\r\n");
            assert_refused(&gw, &origin, request.as_bytes(), &[400], false);
        }
    });
}

/// RFC 9112 §3.2.4: the asterisk-form is only for a server-wide OPTIONS. A gateway may
/// forward it (HAProxy) or answer it itself (nginx answers 400); if it forwards, the target
/// stays `*`. Any other method with `*` is a bad request.
#[test]
fn asterisk_form_is_kept_for_options_and_refused_otherwise() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let gw = through(driver, &origin);
        let (_client, resp) = exchange(&gw, b"OPTIONS * HTTP/1.1\r\nHost: test\r\n\r\n");
        if resp
            .header("server")
            .is_some_and(|s| s.contains("shardgate"))
        {
            origin.assert_no_request();
        } else {
            assert_eq!(resp.status, 200);
            let seen = origin.recv();
            assert_eq!(
                (seen.method.as_str(), seen.target.as_str()),
                ("OPTIONS", "*")
            );
        }
        for method in ["GET", "POST", "HEAD"] {
            let request = format!("{method} * HTTP/1.1\r\nHost: test\r\n\r\n");
            assert_refused(&gw, &origin, request.as_bytes(), &[400], false);
        }
    });
}

/// RFC 3986 §3.5 / RFC 9112 §3.2: a fragment is never part of a request target. Envoy rejects
/// it (400, since 1.19.1), HAProxy rejects it (400, CVE-2023-45539), nginx matches locations
/// without it. A gateway that keeps `#frag` in the path it routes on lets `/admin#x` slip
/// past a route guarding `/admin` while the upstream, which drops the fragment, serves
/// /admin: an access-control bypass. So: 400, or route and forward without the fragment.
#[test]
fn fragment_in_the_target_never_bypasses_a_route() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let gw = Conf::new(driver)
            .upstream("o", &[origin.addr()])
            .route(
                "guard",
                "path_prefix = \"/admin\"\ndirect = { status = 403, body = \"denied\", content_type = \"text/plain\" }",
            )
            .proxy_all("o")
            .start();
        for target in ["/admin#x", "/admin#", "/admin#/../public"] {
            let (_client, resp) = exchange(
                &gw,
                format!("GET {target} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes(),
            );
            assert!(
                resp.status == 400 || resp.status == 403,
                "GET {target} was answered {} {} (body {:?}): the fragment took it past the \
                 /admin route",
                resp.status,
                resp.reason,
                resp.body_str()
            );
            origin.assert_no_request();
        }
        for target in ["/public#frag", "/public?q=1#frag"] {
            let (_client, resp) = exchange(
                &gw,
                format!("GET {target} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes(),
            );
            if resp.status == 400 {
                origin.assert_no_request();
                continue;
            }
            assert_eq!(resp.status, 200, "GET {target}");
            let seen = origin.recv();
            assert!(
                !seen.target.contains('#'),
                "GET {target}: the fragment was forwarded upstream as {:?}",
                seen.target
            );
        }
    });
}

/// RFC 3986 §6.2.2: empty segments are significant; normalisation does not merge slashes
/// (nginx with proxy_pass without a URI, HAProxy and Envoy all forward them as sent).
#[test]
fn empty_path_segments_are_forwarded_as_sent() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let gw = through(driver, &origin);
        for target in ["//a//b", "/a//", "/a///b?x=//y"] {
            let (_client, resp) = exchange(
                &gw,
                format!("GET {target} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes(),
            );
            assert_eq!(resp.status, 200, "GET {target}");
            assert_eq!(origin.recv().target, target);
        }
    });
}

/// A query close to max_uri_bytes, full of characters a normaliser might touch, reaches the
/// upstream byte for byte (RFC 3986 §6.2.2 covers the path only).
#[test]
fn long_query_is_forwarded_byte_exact() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let gw = through(driver, &origin);
        let mut query = String::from("?");
        while query.len() < 7800 {
            query.push_str("a=%2e%2e/../%2F&b=%41%zz+x;y=z&");
        }
        let target = format!("/q{query}");
        let (_client, resp) = exchange(
            &gw,
            format!("GET {target} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes(),
        );
        assert_eq!(resp.status, 200);
        assert_eq!(origin.recv().target, target);
    });
}

// ---------------------------------------------------------------------------------------------
// Host: RFC 9112 §3.2, RFC 9110 §7.2.
// ---------------------------------------------------------------------------------------------

/// Host = uri-host [ ":" port ]: reg-names in any case, with a port, a trailing dot, IPv4 and
/// bracketed IPv6 literals are all valid and forwarded as sent; host routing is
/// case-insensitive and ignores the port.
#[test]
fn valid_host_forms_are_accepted_and_preserved() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let gw = Conf::new(driver)
            .upstream("o", &[origin.addr()])
            .route("named", "hosts = [\"example.com\"]\nupstream = \"o\"")
            .direct("any", "", "any")
            .start();
        for host in ["example.com", "EXAMPLE.com:80", "Example.COM:8080"] {
            let (_client, resp) = exchange(
                &gw,
                format!("GET /h HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes(),
            );
            assert_eq!(
                (resp.status, resp.body_str().as_str()),
                (200, "/h"),
                "Host: {host}"
            );
            assert_eq!(origin.recv().headers_named("host"), [host]);
        }
        for host in [
            "[::1]",
            "[::1]:8080",
            "127.0.0.1:8080",
            "a-b.c_d.test",
            "x.test.",
        ] {
            let (_client, resp) = exchange(
                &gw,
                format!("GET /h HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes(),
            );
            assert_eq!(resp.status, 200, "Host: {host}");
        }
    });
}

/// RFC 9112 §3.2: a server MUST answer 400 to a Host field with an invalid value.
#[test]
fn invalid_host_values_are_400() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let gw = through(driver, &origin);
        for host in [
            "a/b", "a@b", "a\\b", "a b", "[::1", "::1", "a:b", "a:1:2", "a?b", "a#b", "[::1]x",
        ] {
            let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
            assert_refused(&gw, &origin, request.as_bytes(), &[400], false);
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Methods and versions: RFC 9110 §9.1, §2.5; RFC 9112 §2.3.
// ---------------------------------------------------------------------------------------------

/// RFC 9110 §9.1: the method token is case-sensitive. `get` is not GET: it is forwarded as
/// sent (HAProxy does; nginx refuses lowercase methods with 400), does not match a route
/// limited to GET, and `head` is not HEAD (its response has a body that must be relayed, or
/// the connection desyncs).
#[test]
fn lowercase_methods_are_distinct_tokens_forwarded_as_sent() {
    for_each_driver(|driver| {
        let origin = Origin::start(|req| Reply::ok(format!("{} {}", req.method, req.target)));
        let gw = Conf::new(driver)
            .upstream("o", &[origin.addr()])
            .route(
                "get-only",
                "path = \"/m\"\nmethods = [\"GET\"]\ndirect = { status = 200, body = \"GET route\", content_type = \"text/plain\" }",
            )
            .proxy_all("o")
            .start();
        let mut client = Client::connect(gw.addr());
        client.send(b"get /m HTTP/1.1\r\nHost: test\r\n\r\n");
        assert_eq!(client.read_response().body_str(), "get /m");
        assert_eq!(origin.recv().method, "get");

        client.send(b"head /h HTTP/1.1\r\nHost: test\r\n\r\n");
        let resp = client.read_response();
        assert_eq!(
            resp.body_str(),
            "head /h",
            "`head` is not HEAD: the body belongs to it"
        );
        assert_eq!(origin.recv().method, "head");
        assert_eq!(client.get("/after").body_str(), "GET /after");
    });
}

/// RFC 9110 §9.1/§16.1: methods are an open set of tokens; unknown ones are forwarded with
/// their bodies.
#[test]
fn unknown_methods_are_forwarded_with_their_bodies() {
    for_each_driver(|driver| {
        let origin = Origin::start(|req| {
            Reply::ok(format!(
                "{} {}",
                req.method,
                String::from_utf8_lossy(&req.body)
            ))
        });
        let gw = through(driver, &origin);
        let mut client = Client::connect(gw.addr());
        for method in ["PROPFIND", "PURGE", "X-CUSTOM_1", "M!#$%&'*+.^`|~"] {
            client.send(
                format!("{method} /u HTTP/1.1\r\nHost: test\r\nContent-Length: 3\r\n\r\nabc")
                    .as_bytes(),
            );
            let resp = client.read_response();
            assert_eq!(
                (resp.status, resp.body_str()),
                (200, format!("{method} abc")),
                "{method}"
            );
            assert_eq!(origin.recv().method, method);
        }
    });
}

/// RFC 9112 §2.3: HTTP-name is case-sensitive `HTTP`; `http/1.1` is not a version at all, so
/// the request line is malformed: 400, not 505 (nginx: 400).
#[test]
fn lowercase_protocol_name_is_400() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let gw = through(driver, &origin);
        for version in ["http/1.1", "Http/1.1", "HTTP/1", "HTTP/1.1.1", "HTTP/11"] {
            let request = format!("GET / {version}\r\nHost: test\r\n\r\n");
            assert_refused(&gw, &origin, request.as_bytes(), &[400], false);
        }
    });
}

/// The project contract (issue 2) answers every version other than 1.0 and 1.1 with 505, and
/// nothing reaches the upstream. RFC 9110 §2.5 would let a 1.1 server serve `HTTP/1.2` as 1.1
/// (nginx does); the contract was chosen over that SHOULD, so this pins the contract.
#[test]
fn versions_other_than_10_and_11_are_505_per_the_contract() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let gw = through(driver, &origin);
        for version in ["HTTP/1.2", "HTTP/2.0", "HTTP/3.0", "HTTP/0.9"] {
            let request = format!("GET /v HTTP{}\r\nHost: test\r\n\r\n", &version[4..]);
            assert_refused(&gw, &origin, request.as_bytes(), &[505], false);
        }
    });
}

/// RFC 9110 §10.1.1: an expectation other than 100-continue MAY be answered 417; when the
/// gateway does, the answer is its own (Date, Server) and nothing is forwarded.
#[test]
fn unknown_expectation_is_answered_by_the_gateway_or_ignored() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let gw = through(driver, &origin);
        let (_client, resp) = exchange(
            &gw,
            b"GET /e HTTP/1.1\r\nHost: test\r\nExpect: teapot\r\n\r\n",
        );
        if resp.status == 417 {
            resp.assert_generated();
            origin.assert_no_request();
        } else {
            assert_eq!(resp.status, 200);
            origin.recv();
        }
    });
}

// ---------------------------------------------------------------------------------------------
// What the upstream sees: RFC 9110 §7.6.
// ---------------------------------------------------------------------------------------------

/// Field names keep their case and repeated fields their order (RFC 9110 §5.3: order of
/// same-name lines is significant).
#[test]
fn field_name_case_and_order_are_preserved_upstream() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let gw = through(driver, &origin);
        let (_client, resp) = exchange(
            &gw,
            b"GET /c HTTP/1.1\r\nHost: test\r\nx-CuStOm-Name: v\r\nX-A: 1\r\nX-B: 2\r\n\
              x-a: 3\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n",
        );
        assert_eq!(resp.status, 200);
        let seen = origin.recv();
        let head = String::from_utf8_lossy(&seen.raw_head);
        assert!(head.contains("\r\nx-CuStOm-Name: v\r\n"), "{head}");
        let order: Vec<_> = seen
            .headers
            .iter()
            .filter(|(n, _)| ["x-a", "x-b"].contains(&n.to_ascii_lowercase().as_str()))
            .map(|(n, v)| format!("{n}: {v}"))
            .collect();
        assert_eq!(order, ["X-A: 1", "X-B: 2", "x-a: 3"]);
        assert_eq!(seen.headers_named("cookie"), ["a=1", "b=2"]);
    });
}

/// RFC 9110 §11.7.2 lets a proxy relay Proxy-Authorization; nginx forwards it untouched and
/// so does this gateway (it is not hop-by-hop in §7.6.1's list).
#[test]
fn proxy_authorization_is_forwarded() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let gw = through(driver, &origin);
        let (_client, resp) = exchange(
            &gw,
            b"GET /pa HTTP/1.1\r\nHost: test\r\nProxy-Authorization: Basic dTpw\r\n\r\n",
        );
        assert_eq!(resp.status, 200);
        assert_eq!(
            origin.recv().headers_named("proxy-authorization"),
            ["Basic dTpw"]
        );
    });
}

/// RFC 9110 §7.6.2: an intermediary receiving OPTIONS or TRACE with Max-Forwards MUST
/// decrement it when forwarding, and MUST answer itself when it is 0. For other methods it
/// MAY be ignored (and is forwarded unchanged).
#[test]
fn max_forwards_is_decremented_for_options_and_trace() {
    for_each_driver(|driver| {
        let origin = Origin::echo_target();
        let gw = through(driver, &origin);
        let (_client, resp) = exchange(
            &gw,
            b"GET /mf HTTP/1.1\r\nHost: test\r\nMax-Forwards: 0\r\n\r\n",
        );
        assert_eq!(resp.status, 200);
        origin.recv();

        for method in ["OPTIONS", "TRACE"] {
            let (_client, resp) = exchange(
                &gw,
                format!("{method} /mf HTTP/1.1\r\nHost: test\r\nMax-Forwards: 5\r\n\r\n")
                    .as_bytes(),
            );
            assert_eq!(resp.status, 200, "{method}");
            assert_eq!(
                origin.recv().headers_named("max-forwards"),
                ["4"],
                "{method} with Max-Forwards: 5 must reach the upstream with 4"
            );

            let (_client, resp) = exchange(
                &gw,
                format!("{method} /mf HTTP/1.1\r\nHost: test\r\nMax-Forwards: 0\r\n\r\n")
                    .as_bytes(),
            );
            origin.assert_no_request();
            assert!(
                resp.header("server")
                    .is_some_and(|s| s.contains("shardgate")),
                "{method} with Max-Forwards: 0 must be answered by the gateway itself, got \
                 {} {:?}",
                resp.status,
                resp.headers
            );
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Responses from the upstream: RFC 9112 §6, RFC 9110 §15.
// ---------------------------------------------------------------------------------------------

/// RFC 9110 §7.6.1: a proxy removes the fields the upstream's Connection names, but framing
/// is its own job: the client must still be able to find the end of the body. An upstream
/// saying `Connection: Content-Length` must not make the gateway send a keep-alive response
/// without any framing (the next response would be read as this body). nginx keeps
/// Content-Length in this case.
#[test]
fn connection_option_naming_content_length_keeps_the_response_framed() {
    for_each_driver(|driver| {
        let origin = scripted(|_| {
            b"HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\nhello"
                .to_vec()
        });
        let gw = through(driver, &origin);
        let mut client = Client::connect(gw.addr());
        client.send(b"GET /a HTTP/1.1\r\nHost: test\r\n\r\n");
        let head = client.read_head_only();
        assert_eq!(head.status, 200);
        assert_delimited(&head, "upstream sent Connection: Content-Length");

        let mut client = Client::connect(gw.addr());
        for path in ["/a", "/b"] {
            let resp = client.get(path);
            assert_eq!(
                (resp.status, resp.body_str().as_str()),
                (200, "hello"),
                "{path}"
            );
        }
    });
}

/// RFC 9110 §6.6.1: a recipient with a clock that forwards a response without Date MUST add
/// one. An upstream `Connection: Date` removes the upstream's Date, so the gateway adds its
/// own.
#[test]
fn forwarded_responses_always_carry_a_date() {
    for_each_driver(|driver| {
        let origin = scripted(|req| {
            match req.target.as_str() {
            "/named" => b"HTTP/1.1 200 OK\r\nConnection: Date\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\nContent-Length: 2\r\n\r\nok".to_vec(),
            "/dated" => b"HTTP/1.1 200 OK\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\nContent-Length: 2\r\n\r\nok".to_vec(),
            _ => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        }
        });
        let gw = through(driver, &origin);
        let mut client = Client::connect(gw.addr());
        let undated = client.get("/undated");
        assert_eq!(
            undated.headers_named("date").len(),
            1,
            "{:?}",
            undated.headers
        );
        assert!(undated.header("date").unwrap().ends_with(" GMT"));
        let dated = client.get("/dated");
        assert_eq!(
            dated.headers_named("date"),
            ["Mon, 01 Jan 2024 00:00:00 GMT"],
            "the upstream's Date is kept, once"
        );
        let named = client.get("/named");
        assert_eq!(
            named.headers_named("date").len(),
            1,
            "no Date forwarded after the upstream's Connection: Date: {:?}",
            named.headers
        );
    });
}

/// RFC 9110 §8.6: `Content-Length: 5, 5` or two equal lines MAY be accepted only by replacing
/// them with one valid field; a proxy never forwards the list (nginx ≥ 1.23 answers 502,
/// 1.22 sends one line). Strict clients refuse the list form.
#[test]
fn repeated_upstream_content_length_is_sent_once_or_refused() {
    for_each_driver(|driver| {
        let origin = scripted(|req| match req.target.as_str() {
            "/list" => b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello".to_vec(),
            _ => b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
        });
        let gw = through(driver, &origin);
        for path in ["/list", "/lines"] {
            let mut client = Client::connect(gw.addr());
            client.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
            let head = client.read_head_only();
            if head.status == 502 {
                head.assert_generated();
                continue;
            }
            assert_eq!(head.status, 200);
            assert_eq!(
                head.headers_named("content-length"),
                ["5"],
                "GET {path}: forwarded {:?}",
                String::from_utf8_lossy(&head.raw_head)
            );
        }
    });
}

/// RFC 9112 §6.1: Transfer-Encoding is hop-by-hop, so the gateway re-frames, but it may only
/// drop codings it actually decoded. Passing a `gzip, chunked` body on as plain chunked hands
/// the client compressed bytes labelled as identity. nginx (≥ 1.23) answers 502 to any
/// upstream Transfer-Encoding other than `chunked`; chunked applied twice is forbidden by
/// §6.1 and refused the same way.
#[test]
fn upstream_transfer_codings_are_never_silently_dropped() {
    // "hello" gzip-compressed; what matters is that these bytes are not the content.
    const GZ: &[u8] = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xcbH\xcd\xc9\xc9\x07\x00\x86\xa6\x106\x05\x00\x00\x00";
    for_each_driver(|driver| {
        let origin = scripted(|req| {
            let mut out = match req.target.as_str() {
                "/gzip-chunked" => {
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n".to_vec()
                }
                _ => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
                    .to_vec(),
            };
            out.extend(common::wire::encode_chunked(GZ, 7));
            out
        });
        let gw = through(driver, &origin);
        for path in ["/gzip-chunked", "/gzip-lines"] {
            let resp = Client::connect(gw.addr()).get(path);
            if resp.status == 502 {
                resp.assert_generated();
                continue;
            }
            let codings = resp.headers_named("transfer-encoding").join(", ");
            assert!(
                codings.to_ascii_lowercase().contains("gzip"),
                "GET {path}: the upstream's gzip transfer coding was dropped; the client got \
                 {} compressed bytes as the content with Transfer-Encoding {codings:?}",
                resp.body.len()
            );
        }

        let doubled = scripted(|_| {
            let mut out =
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n".to_vec();
            out.extend(common::wire::encode_chunked(
                &common::wire::encode_chunked(b"hello", 5),
                64,
            ));
            out
        });
        let gw = through(driver, &doubled);
        let resp = Client::connect(gw.addr()).get("/double");
        assert!(
            resp.status == 502 || resp.body_str() == "hello",
            "chunked applied twice answered {} with body {:?}",
            resp.status,
            resp.body_str()
        );
    });
}

/// RFC 9112 §6.1 and §6.3: an HTTP/1.0 response with Transfer-Encoding has faulty framing; the
/// recipient closes after it. What it must not do is pass the chunk framing on as content:
/// nginx decodes the chunks (client gets "hello"); refusing with 502 is also safe.
#[test]
fn http10_upstream_response_with_chunked_is_decoded_or_refused() {
    for_each_driver(|driver| {
        let origin = answers_then_closes(
            b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        );
        let gw = through(driver, &origin);
        let resp = Client::connect(gw.addr()).get("/te10");
        assert!(
            resp.status == 502 || (resp.status == 200 && resp.body_str() == "hello"),
            "answered {} with body {:?}: the chunk framing was relayed as content",
            resp.status,
            resp.body_str()
        );
    });
}

/// RFC 9112 §6.3 rule 8: an HTTP/1.0 response without a length runs to the close. The 1.1
/// client gets it framed (chunked) and keeps its connection.
#[test]
fn http10_upstream_response_without_length_reaches_the_client_framed() {
    for_each_driver(|driver| {
        let origin = answers_then_closes(b"HTTP/1.0 200 OK\r\nX-Old: 1\r\n\r\nold body");
        let gw = through(driver, &origin);
        let mut client = Client::connect(gw.addr());
        client.send(b"GET /old HTTP/1.1\r\nHost: test\r\n\r\n");
        let head = client.read_head_only();
        assert_delimited(&head, "close-delimited HTTP/1.0 upstream response");
        drop(client);
        let mut client = Client::connect(gw.addr());
        let resp = client.get("/old");
        assert_eq!((resp.status, resp.body_str().as_str()), (200, "old body"));
        assert_eq!(resp.header("x-old"), Some("1"));
        assert!(
            resp.header("via").is_some_and(|v| v.starts_with("1.0 ")),
            "Via names the received protocol, 1.0: {:?}",
            resp.headers
        );
    });
}

/// RFC 9110 §9.3.2 and §15.3.5 / §15.4.5: no body follows a response to HEAD, a 204 or a 304,
/// whatever the upstream sends after the head. Stray bytes from a broken upstream never reach
/// the client nor the next exchange.
#[test]
fn stray_bytes_after_bodiless_upstream_responses_are_not_relayed() {
    for_each_driver(|driver| {
        let origin = scripted(|req| match req.target.as_str() {
            "/204" => b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
            "/304" => {
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\nETag: \"v\"\r\n\r\nhello"
                    .to_vec()
            }
            // Answers HEAD like GET, body included.
            _ => b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
        });
        let gw = through(driver, &origin);
        let mut client = Client::connect(gw.addr());
        client.send(b"HEAD /h HTTP/1.1\r\nHost: test\r\n\r\n");
        let head = client.read_head_response();
        assert_eq!(
            (head.status, head.header("content-length")),
            (200, Some("5"))
        );
        assert_eq!(client.get("/g").body_str(), "hello", "after HEAD");

        let no_content = client.get("/204");
        assert_eq!(no_content.status, 204);
        assert_eq!(client.get("/g").body_str(), "hello", "after 204");

        let not_modified = client.get("/304");
        assert_eq!(not_modified.status, 304);
        assert_eq!(not_modified.header("etag"), Some("\"v\""));
        assert_eq!(client.get("/g").body_str(), "hello", "after 304");
    });
}

/// RFC 9110 §5.3: the order of same-name field lines is significant (Set-Cookie above all),
/// and so is their interleaving with other fields when relayed.
#[test]
fn upstream_field_order_is_preserved() {
    for_each_driver(|driver| {
        let origin = Origin::start(|_| {
            Reply::ok("x")
                .header("Set-Cookie", "a=1; Path=/")
                .header("X-Dup", "1")
                .header("Set-Cookie", "b=2, c=3")
                .header("X-Other", "o")
                .header("x-dup", "2")
                .header("Set-Cookie", "d=4")
        });
        let gw = through(driver, &origin);
        let resp = Client::connect(gw.addr()).get("/order");
        assert_eq!(
            resp.headers_named("set-cookie"),
            ["a=1; Path=/", "b=2, c=3", "d=4"]
        );
        let order: Vec<_> = resp
            .headers
            .iter()
            .filter(|(n, _)| n.to_ascii_lowercase().starts_with("x-") && n != "X-Request-Id")
            .map(|(n, v)| format!("{n}: {v}"))
            .collect();
        assert_eq!(order, ["X-Dup: 1", "X-Other: o", "x-dup: 2"]);
    });
}

/// RFC 9112 §5.2 / §5.1 and RFC 9110 §5.5: a response with obs-fold, whitespace before a colon,
/// a bare CR or NUL in a field is invalid. A proxy answers 502 (nginx does) or repairs it;
/// it never relays a line that a client could split into two fields.
#[test]
fn malformed_upstream_field_lines_are_502_or_repaired() {
    for_each_driver(|driver| {
        let origin = scripted(|req| match req.target.as_str() {
            "/fold" => b"HTTP/1.1 200 OK\r\nX-F: a\r\n b\r\nContent-Length: 2\r\n\r\nok".to_vec(),
            "/space" => b"HTTP/1.1 200 OK\r\nX-S : 1\r\nContent-Length: 2\r\n\r\nok".to_vec(),
            "/cr" => {
                b"HTTP/1.1 200 OK\r\nX-C: a\rSet-Cookie: evil=1\r\nContent-Length: 2\r\n\r\nok"
                    .to_vec()
            }
            _ => b"HTTP/1.1 200 OK\r\nX-N: a\0b\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        });
        let gw = through(driver, &origin);
        for path in ["/fold", "/space", "/cr", "/nul"] {
            let resp = Client::connect(gw.addr()).get(path);
            if resp.status == 502 {
                resp.assert_generated();
                continue;
            }
            assert_eq!(
                (resp.status, resp.body_str().as_str()),
                (200, "ok"),
                "{path}"
            );
            let raw = &resp.raw_head;
            let bad = raw
                .windows(3)
                .any(|w| w[..2] == *b"\r\n" && (w[2] == b' ' || w[2] == b'\t'))
                || raw.contains(&0)
                || raw
                    .iter()
                    .enumerate()
                    .any(|(i, &b)| b == b'\r' && raw.get(i + 1) != Some(&b'\n'))
                || String::from_utf8_lossy(raw).contains("X-S :")
                || resp.has_header("set-cookie");
            assert!(
                !bad,
                "GET {path}: relayed unrepaired: {:?}",
                String::from_utf8_lossy(raw)
            );
        }
    });
}

/// RFC 9110 §15.2: 1xx responses other than 101 may precede the final one; whatever the
/// gateway does with them (RFC: forward; many proxies drop all but 100/103), the final
/// response arrives intact, the connection stays in sync, and an HTTP/1.0 client never sees
/// a 1xx.
#[test]
fn unknown_interim_responses_do_not_disturb_the_final_one() {
    for_each_driver(|driver| {
        let origin = scripted(|_| {
            b"HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 199 Whatever\r\nX-I: 1\r\n\r\n\
              HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                .to_vec()
        });
        let gw = through(driver, &origin);
        let mut client = Client::connect(gw.addr());
        for _ in 0..2 {
            client.send(b"GET /i HTTP/1.1\r\nHost: test\r\n\r\n");
            let mut resp = client.read_response();
            while resp.status < 200 {
                assert_ne!(resp.status, 101);
                resp = client.read_response();
            }
            assert_eq!((resp.status, resp.body_str().as_str()), (200, "ok"));
        }
        let (_client, resp) = exchange(&gw, b"GET /i HTTP/1.0\r\n\r\n");
        assert_eq!(
            (resp.status, resp.body_str().as_str()),
            (200, "ok"),
            "an HTTP/1.0 client got a 1xx"
        );
    });
}

/// RFC 9110 §15.2.2: 101 answers an Upgrade the client asked for. The gateway forwarded no
/// Upgrade, so a 101 is a broken upstream: 502, and nothing after it is tunnelled.
#[test]
fn upstream_101_without_an_upgrade_is_502() {
    for_each_driver(|driver| {
        let origin = scripted(|_| {
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\nConnection: Upgrade\r\n\r\ntunnelled bytes"
                .to_vec()
        });
        let gw = through(driver, &origin);
        let mut client = Client::connect(gw.addr());
        let resp = client.get("/u");
        assert_eq!(resp.status, 502);
        resp.assert_generated();
        assert!(!resp.body_str().contains("tunnelled"));
        // Nothing of the 101's aftermath is left on the client connection either.
        client.send(b"GET /again HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        assert_eq!(client.read_response().status, 502);
        client.expect_closed();
    });
}

/// RFC 9110 §7.6.3: each intermediary appends its Via entry, on responses too, after the
/// upstream's; the received protocol is the upstream's version.
#[test]
fn via_is_appended_to_the_upstream_via_on_responses() {
    for_each_driver(|driver| {
        let origin = Origin::start(|_| Reply::ok("v").header("Via", "1.1 origin-cache"));
        let gw = through(driver, &origin);
        let resp = Client::connect(gw.addr()).get("/via");
        let via = resp.headers_named("via").join(", ");
        assert_eq!(via, "1.1 origin-cache, 1.1 shardgate");
    });
}
