//! Request-path costs per request: parsing a request head, parsing an upstream response head,
//! and writing the head that goes upstream.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shardgate::config::HostHeader;
use shardgate::http::request::{HeadLimits, RequestHead};
use shardgate::http::response::ResponseHead;
use shardgate::proxy::head::{upstream_request, Forwarding};

const LIMITS: HeadLimits = HeadLimits {
    max_headers: 100,
    max_header_bytes: 16384,
    max_uri_bytes: 8192,
};

const WRK: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";

const BROWSER: &[u8] = b"GET /api/v1/users/12345/orders?limit=20&sort=desc HTTP/1.1\r\n\
Host: api.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n\
Accept: application/json, text/plain, */*\r\n\
Accept-Language: en-US,en;q=0.9\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Referer: https://app.example.com/dashboard\r\n\
Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U\r\n\
Cookie: session=3f9a8b7c6d5e4f3a2b1c; theme=dark; locale=en\r\n\
X-Forwarded-For: 203.0.113.7\r\n\
Connection: keep-alive\r\n\
\r\n";

const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\n\
Server: nginx/1.22.1\r\n\
Date: Sat, 21 Nov 2026 06:24:19 GMT\r\n\
Content-Type: application/json\r\n\
Content-Length: 1024\r\n\
Connection: keep-alive\r\n\
Cache-Control: no-store\r\n\
\r\n";

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    for (name, raw) in [("request/wrk", WRK), ("request/browser", BROWSER)] {
        let mut head = RequestHead::default();
        g.throughput(Throughput::Bytes(raw.len() as u64));
        g.bench_function(name, |b| b.iter(|| head.parse(black_box(raw), &LIMITS)));
    }
    let mut resp = ResponseHead::default();
    g.throughput(Throughput::Bytes(RESPONSE.len() as u64));
    g.bench_function("response", |b| {
        b.iter(|| {
            resp.parse(
                black_box(RESPONSE),
                100,
                16384,
                shardgate::http::request::Method::Get,
            )
        })
    });
    g.finish();
}

fn encode(c: &mut Criterion) {
    let mut head = RequestHead::default();
    assert!(matches!(head.parse(BROWSER, &LIMITS), Ok(true)));
    let path = &BROWSER[head.path.clone()];
    let forwarding = Forwarding {
        path,
        host_header: &HostHeader::Preserve,
        target_host: "127.0.0.1:9001",
        client_ip: b"198.51.100.23",
        request_id: b"89e929d4071df6be1cb7fd0d1cc3bba1",
        via: true,
    };
    let mut out = Vec::with_capacity(4096);
    c.bench_function("encode/upstream_request/browser", |b| {
        b.iter(|| {
            out.clear();
            upstream_request(&mut out, black_box(BROWSER), &head, &forwarding);
            black_box(out.len())
        })
    });
}

criterion_group!(benches, parse, encode);
criterion_main!(benches);
