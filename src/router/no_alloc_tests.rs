//! The hot path's promise, checked: `find` (and `normalize` into a warmed buffer) allocate
//! nothing. A counting allocator wraps the system one for the lib's test binary; the count is
//! per thread, so tests running in parallel do not disturb each other.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use super::tests::Fields;
use super::*;
use crate::http::path::normalize;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: defers every call to `System` unchanged; the counter is a const-initialised
// thread-local, so bumping it never allocates or re-enters the allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

pub(crate) fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

fn many_rules() -> Vec<RouteRule> {
    (0..2_000)
        .map(|i| RouteRule {
            hosts: match i % 3 {
                0 => vec![format!("svc{i}.example.com")],
                1 => vec![format!("*.t{i}.example.com")],
                _ => Vec::new(),
            },
            path: match i % 4 {
                0 => PathRule::Any,
                1 => PathRule::Exact(format!("/x/{i}")),
                _ => PathRule::Prefix(format!("/api/{i}")),
            },
            methods: if i % 5 == 0 {
                vec!["POST".into()]
            } else {
                Vec::new()
            },
            headers: if i % 7 == 0 {
                vec![("x-canary".into(), "1".into())]
            } else {
                Vec::new()
            },
        })
        .collect()
}

#[test]
fn the_counter_sees_allocations() {
    let count = allocations_during(|| drop(std::hint::black_box(Vec::<u8>::with_capacity(8))));
    assert_eq!(count, 1);
}

#[test]
fn find_does_not_allocate() {
    let router = match Router::build(&many_rules()) {
        Ok(router) => router,
        Err(errors) => panic!("{errors:?}"),
    };
    let long_host = vec![b'a'; 300];
    let requests: [(&[u8], &[u8]); 8] = [
        (b"svc3.example.com:8080", b"/api/3/x"),
        (b"a.b.t1.example.com", b"/x/1"),
        (b"A.T4.EXAMPLE.COM.", b"/api/4"),
        (b"nowhere.test", b"/api/998/deep/path/here"),
        (b"[::1]:8080", b"/missing"),
        (b"", b"/"),
        (&long_host, b"/api/2"),
        (
            b"svc0.example.com",
            b"/x/1/too/deep/for/any/route/at/all/really",
        ),
    ];
    let canary: &[(&str, &[u8])] = &[("x-canary", b"1")];
    let mut found = 0;
    let count = allocations_during(|| {
        for (host, path) in requests {
            for method in [&b"GET"[..], b"POST"] {
                let req = RouteRequest {
                    host,
                    path,
                    method,
                    headers: &Fields(canary),
                };
                found += usize::from(router.find(&req).is_some());
            }
        }
    });
    assert_eq!(count, 0);
    assert!(found > 0);
}

#[test]
fn normalize_into_a_warmed_buffer_does_not_allocate() {
    let mut out = Vec::with_capacity(256);
    let count = allocations_during(|| {
        for raw in [
            &b"/api/v1/users/42"[..],
            b"/a/./b/../c/%7euser/%2e%2e/d%2fe//f/",
            b"/%41%42%43",
            b"/../x",
        ] {
            let _ = normalize(raw, &mut out);
        }
    });
    assert_eq!(count, 0);
}
