//! The checker against real sockets: fake targets on 127.0.0.1 that answer, refuse, hang,
//! fail or babble on command. Nothing waits by sleeping: each test polls the state it expects
//! (health flags, counters, connections seen by a fake) under a 10 s guard, and where it must
//! show that something did *not* happen it counts another target's probes as the clock.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use super::{CheckConfig, FailureKind, HealthChecker, Probe, TargetHealth};

const GUARD: Duration = Duration::from_secs(10);

/// What a fake target does with each connection it accepts, from then on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Answer(u16),
    /// Reads the request and never answers; waits for the prober to close.
    Hang,
    /// A line that is not a status line.
    Garbage,
    /// More bytes than a status line may take, with no line end.
    Flood,
    /// Reads the request and closes without a word.
    Close,
}

#[derive(Default)]
struct Seen {
    accepted: AtomicUsize,
    /// Connections the prober closed (or that ended otherwise) after being served.
    ended: AtomicUsize,
    requests: Mutex<Vec<Vec<u8>>>,
}

struct FakeTarget {
    addr: SocketAddr,
    behaviour: Arc<Mutex<Behaviour>>,
    seen: Arc<Seen>,
    /// Bound but not yet listening: connections to it are refused.
    unlistened: Mutex<Option<Socket>>,
}

impl FakeTarget {
    fn start(behaviour: Behaviour) -> FakeTarget {
        let target = FakeTarget::refusing(behaviour);
        target.listen();
        target
    }

    /// A target whose port is held but refuses connections until [`FakeTarget::listen`]:
    /// the address stays ours (no other test can take it) while it refuses.
    fn refusing(behaviour: Behaviour) -> FakeTarget {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        socket
            .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        let addr = socket.local_addr().unwrap().as_socket().unwrap();
        FakeTarget {
            addr,
            behaviour: Arc::new(Mutex::new(behaviour)),
            seen: Arc::default(),
            unlistened: Mutex::new(Some(socket)),
        }
    }

    fn listen(&self) {
        let socket = self
            .unlistened
            .lock()
            .unwrap()
            .take()
            .expect("listening already");
        socket.listen(128).unwrap();
        let listener: TcpListener = socket.into();
        let (behaviour, seen) = (Arc::clone(&self.behaviour), Arc::clone(&self.seen));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                seen.accepted.fetch_add(1, SeqCst);
                let now = *behaviour.lock().unwrap_or_else(PoisonError::into_inner);
                let seen = Arc::clone(&seen);
                std::thread::spawn(move || serve(stream, now, &seen));
            }
        });
    }

    fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }

    fn accepted(&self) -> usize {
        self.seen.accepted.load(SeqCst)
    }

    fn ended(&self) -> usize {
        self.seen.ended.load(SeqCst)
    }

    fn probe(&self, upstream: &str, health: &Arc<TargetHealth>, config: CheckConfig) -> Probe {
        Probe {
            upstream: upstream.into(),
            addr: self.addr,
            health: Arc::clone(health),
            config,
        }
    }
}

fn serve(mut stream: TcpStream, behaviour: Behaviour, seen: &Seen) {
    stream.set_read_timeout(Some(GUARD)).unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    seen.requests.lock().unwrap().push(head);
    // Write errors are expected: the prober closes as soon as it has a status line.
    let _ = match behaviour {
        Behaviour::Answer(status) => write!(
            stream,
            "HTTP/1.1 {status} Whatever\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
        Behaviour::Garbage => stream.write_all(b"\x16\x03\x01\x00 not http at all\r\n\r\n"),
        Behaviour::Flood => stream.write_all(&[b'x'; 4096]),
        Behaviour::Hang => Ok(()),
        Behaviour::Close => {
            seen.ended.fetch_add(1, SeqCst);
            return;
        }
    };
    // Until the prober closes (or the guard passes): a hanging target holds the connection.
    while let Ok(1..) = stream.read(&mut buf) {}
    seen.ended.fetch_add(1, SeqCst);
}

fn config() -> CheckConfig {
    CheckConfig {
        path: "/healthz".into(),
        host: None,
        interval: Duration::from_millis(50),
        timeout: Duration::from_millis(200),
        healthy_threshold: 2,
        unhealthy_threshold: 2,
        expected_statuses: vec![200..=399],
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + GUARD;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "still waiting after {GUARD:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_healthy_target_stays_healthy() {
    let target = FakeTarget::start(Behaviour::Answer(204));
    let health = TargetHealth::new();
    let checker = HealthChecker::start().unwrap();
    checker.update(vec![target.probe("users", &health, config())]);
    wait_until("5 passed checks", || health.checks_passed() >= 5);
    assert!(health.is_healthy());
    assert_eq!(health.checks_failed(), 0);
    assert_eq!((health.marked_unhealthy(), health.marked_healthy()), (0, 0));
}

#[test]
fn the_probe_is_a_get_with_host_agent_and_close() {
    let (plain, named) = (
        FakeTarget::start(Behaviour::Answer(200)),
        FakeTarget::start(Behaviour::Answer(200)),
    );
    let health = TargetHealth::new();
    let checker = HealthChecker::start().unwrap();
    let with_host = CheckConfig {
        host: Some("users.internal".into()),
        ..config()
    };
    checker.update(vec![
        plain.probe("users", &health, config()),
        named.probe("users", &TargetHealth::new(), with_host),
    ]);
    let first = |t: &FakeTarget| {
        wait_until("a request", || !t.seen.requests.lock().unwrap().is_empty());
        String::from_utf8(t.seen.requests.lock().unwrap()[0].clone()).unwrap()
    };
    assert_eq!(
        first(&plain),
        format!(
            "GET /healthz HTTP/1.1\r\nHost: {}\r\nUser-Agent: shardgate-health-check\r\n\
             Connection: close\r\n\r\n",
            plain.addr
        )
    );
    assert!(first(&named).starts_with("GET /healthz HTTP/1.1\r\nHost: users.internal\r\n"));
}

/// A target that fails with `bad` turns unhealthy after `unhealthy_threshold` failures of
/// `kind`, and healthy again once it answers 200.
fn down_and_back(target: &FakeTarget, kind: FailureKind, fix: impl FnOnce()) {
    let health = TargetHealth::new();
    let checker = HealthChecker::start().unwrap();
    checker.update(vec![target.probe("users", &health, config())]);
    wait_until("unhealthy after 2 failures", || {
        !health.is_healthy() && health.marked_unhealthy() == 1 && health.failures(kind) >= 2
    });
    assert_eq!(health.checks_passed(), 0);
    assert_eq!(
        health.checks_failed(),
        health.failures(kind),
        "{kind:?} only"
    );
    fix();
    wait_until("healthy again after 2 passes", || {
        health.is_healthy() && health.marked_healthy() == 1
    });
    assert!(health.checks_passed() >= 2);
    assert_eq!(health.marked_unhealthy(), 1);
}

#[test]
fn a_refusing_target_goes_down_and_comes_back() {
    let target = FakeTarget::refusing(Behaviour::Answer(200));
    down_and_back(&target, FailureKind::Connect, || target.listen());
}

#[test]
fn a_hanging_target_goes_down_and_comes_back() {
    let target = FakeTarget::start(Behaviour::Hang);
    down_and_back(&target, FailureKind::Timeout, || {
        target.set(Behaviour::Answer(200))
    });
    wait_until("the prober closed the hung connections", || {
        target.ended() >= 2
    });
}

#[test]
fn a_503_target_goes_down_and_comes_back() {
    let target = FakeTarget::start(Behaviour::Answer(503));
    down_and_back(&target, FailureKind::Status, || {
        target.set(Behaviour::Answer(200))
    });
}

#[test]
fn a_garbage_target_goes_down_and_comes_back() {
    let target = FakeTarget::start(Behaviour::Garbage);
    down_and_back(&target, FailureKind::BadResponse, || {
        target.set(Behaviour::Answer(200))
    });
}

#[test]
fn a_flooding_target_goes_down_and_comes_back() {
    let target = FakeTarget::start(Behaviour::Flood);
    down_and_back(&target, FailureKind::BadResponse, || {
        target.set(Behaviour::Answer(200))
    });
}

#[test]
fn a_target_closing_without_answer_goes_down_and_comes_back() {
    let target = FakeTarget::start(Behaviour::Close);
    down_and_back(&target, FailureKind::Reset, || {
        target.set(Behaviour::Answer(200))
    });
}

#[test]
fn update_keeps_targets_that_stay_and_stops_probing_removed_ones() {
    // `slow` and `new` are probed once a minute, so after their first probe any other would
    // come from the update itself; `removed` and `clock` every 50 ms.
    let once = CheckConfig {
        interval: Duration::from_secs(60),
        ..config()
    };
    let [slow, removed, clock, new] = [(); 4].map(|_| FakeTarget::start(Behaviour::Answer(200)));
    let [slow_h, removed_h, clock_h, new_h] = [(); 4].map(|_| TargetHealth::new());
    let checker = HealthChecker::start().unwrap();
    checker.update(vec![
        slow.probe("a", &slow_h, once.clone()),
        removed.probe("b", &removed_h, config()),
        clock.probe("d", &clock_h, config()),
    ]);
    wait_until("first probes", || {
        slow.accepted() == 1 && removed.accepted() >= 2 && clock.accepted() >= 2
    });
    let (removed_before, clock_before) = (removed.accepted(), clock.accepted());
    // Upstream names sort `slow` ("a") before `new` ("c"): were `slow` taken for a new target,
    // its probe would start at once and `new`'s half a second later (START_SPREAD over two).
    checker.update(vec![
        slow.probe("a", &slow_h, once.clone()),
        new.probe("c", &new_h, once),
        clock.probe("d", &clock_h, config()),
    ]);
    wait_until("the new target probed and 5 clock ticks", || {
        new.accepted() == 1 && clock.accepted() >= clock_before + 5
    });
    assert_eq!(slow.accepted(), 1, "kept its schedule: not probed again");
    assert!(
        removed.accepted() <= removed_before + 1,
        "at most the probe in flight at the update: {} then {}",
        removed_before,
        removed.accepted()
    );
    assert!(slow_h.is_healthy() && clock_h.is_healthy() && new_h.is_healthy());
    assert_eq!(slow_h.checks_passed(), 1);
}

#[test]
fn an_unhealthy_target_stays_unhealthy_across_an_update() {
    let target = FakeTarget::start(Behaviour::Answer(503));
    let health = TargetHealth::new();
    let checker = HealthChecker::start().unwrap();
    let slow_to_recover = CheckConfig {
        healthy_threshold: 3,
        ..config()
    };
    checker.update(vec![target.probe(
        "users",
        &health,
        slow_to_recover.clone(),
    )]);
    wait_until("unhealthy", || health.marked_unhealthy() == 1);
    checker.update(vec![target.probe("users", &health, slow_to_recover)]);
    let before = target.accepted();
    wait_until("3 more probes", || target.accepted() >= before + 3);
    assert!(!health.is_healthy());
    assert_eq!(health.marked_unhealthy(), 1, "no second transition");
    target.set(Behaviour::Answer(200));
    wait_until("healthy again", || health.is_healthy());
    assert!(health.checks_passed() >= 3);
}

#[test]
fn hanging_targets_do_not_stall_the_checks_of_a_healthy_one() {
    // The hanging probes would each hold their thread for 5 s: long enough that the healthy
    // target's probes can only have run beside them, never after them.
    let hang = CheckConfig {
        timeout: Duration::from_secs(5),
        ..config()
    };
    let hanging = [(); 3].map(|_| FakeTarget::start(Behaviour::Hang));
    let healthy = FakeTarget::start(Behaviour::Answer(200));
    let health = TargetHealth::new();
    let checker = HealthChecker::start().unwrap();
    let mut probes: Vec<Probe> = hanging
        .iter()
        .map(|t| t.probe("stuck", &TargetHealth::new(), hang.clone()))
        .collect();
    probes.push(healthy.probe("users", &health, config()));
    checker.update(probes);
    wait_until("every hanging target holding a probe", || {
        hanging.iter().all(|t| t.accepted() == 1)
    });
    let before = health.checks_passed();
    wait_until("5 more passed checks", || {
        health.checks_passed() >= before + 5
    });
    assert!(
        hanging.iter().all(|t| t.ended() == 0),
        "the hanging probes were still in flight throughout"
    );
    assert!(health.is_healthy());
}

#[test]
fn dropping_the_checker_stops_the_probes() {
    let (target, clock) = (
        FakeTarget::start(Behaviour::Answer(200)),
        FakeTarget::start(Behaviour::Answer(200)),
    );
    let checker = HealthChecker::start().unwrap();
    let clock_checker = HealthChecker::start().unwrap();
    checker.update(vec![target.probe("users", &TargetHealth::new(), config())]);
    clock_checker.update(vec![clock.probe("clock", &TargetHealth::new(), config())]);
    wait_until("probes", || target.accepted() >= 2);
    drop(checker);
    let (before, clock_before) = (target.accepted(), clock.accepted());
    wait_until("5 clock ticks", || clock.accepted() >= clock_before + 5);
    assert!(
        target.accepted() <= before + 1,
        "at most the probe in flight"
    );
}

#[test]
fn the_checker_can_be_shared_with_the_reload_thread() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<HealthChecker>();
    send_sync::<Probe>();
    send_sync::<Arc<TargetHealth>>();
}

#[test]
fn a_check_with_a_path_that_would_split_the_request_fails_without_sending() {
    let target = FakeTarget::start(Behaviour::Answer(200));
    let (health, clock_health) = (TargetHealth::new(), TargetHealth::new());
    let clock = FakeTarget::start(Behaviour::Answer(200));
    let checker = HealthChecker::start().unwrap();
    let injected = CheckConfig {
        path: "/healthz HTTP/1.1\r\nX-Injected: 1\r\n".into(),
        ..config()
    };
    checker.update(vec![
        target.probe("users", &health, injected),
        clock.probe("clock", &clock_health, config()),
    ]);
    wait_until("unhealthy", || {
        !health.is_healthy() && health.failures(FailureKind::Config) >= 2
    });
    wait_until("5 clock ticks", || clock.accepted() >= 5);
    assert_eq!(target.accepted(), 0, "nothing sent");
}
