//! The process contract: --check, --help, --version, the `listening` line,
//! exit codes and SIGTERM.

mod common;

use common::*;
use std::net::TcpListener;

const GOOD: &str = r#"
[server]
listen = ["127.0.0.1:0"]
workers = 1

[[upstreams]]
name = "api"
targets = [{ addr = "127.0.0.1:9001", weight = 1 }]

[[routes]]
name = "api"
path_prefix = "/api"
upstream = "api"

[[routes]]
name = "hello"
path = "/"
direct = { status = 200, body = "hello\n", content_type = "text/plain" }
"#;

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn check_accepts_a_valid_config() {
    let out = check(GOOD);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr_of(&out));
}

#[test]
fn check_short_flag_works() {
    let file = TempConfig::new(GOOD);
    let out = run_cli(&["-c", file.path().to_str().unwrap(), "-t"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr_of(&out));
}

#[test]
fn check_names_the_key_path_of_an_unknown_upstream() {
    let bad = GOOD.replace("upstream = \"api\"", "upstream = \"users\"");
    let bad = bad.replace(
        "[[routes]]\nname = \"api\"",
        "[[routes]]\nname = \"first\"\npath = \"/first\"\nupstream = \"api\"\n\n[[routes]]\nname = \"api\"",
    );
    let out = check(&bad);
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains(r#"routes[1].upstream: no upstream named "users""#),
        "stderr: {stderr}"
    );
}

#[test]
fn check_reports_every_error_not_just_the_first() {
    let bad = format!(
        "{GOOD}\n[[routes]]\nname = \"u\"\npath = \"/u\"\nupstream = \"users\"\n\n\
         [[routes]]\nname = \"o\"\npath = \"/o\"\nupstream = \"orders\"\n"
    );
    let out = check(&bad);
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains(r#"routes[2].upstream: no upstream named "users""#),
        "stderr: {stderr}"
    );
    assert!(
        stderr.contains(r#"routes[3].upstream: no upstream named "orders""#),
        "stderr: {stderr}"
    );
}

#[test]
fn check_rejects_unknown_keys() {
    let bad = GOOD.replace("workers = 1", "workers = 1\nwokrers = 2");
    let out = check(&bad);
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("wokrers"),
        "error should name the key: {stderr}"
    );
}

#[test]
fn check_rejects_a_bad_duration() {
    let bad = GOOD.replace(
        "targets = [{ addr = \"127.0.0.1:9001\", weight = 1 }]",
        "targets = [{ addr = \"127.0.0.1:9001\", weight = 1 }]\nread_timeout = \"soon\"",
    );
    let out = check(&bad);
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("read_timeout"),
        "error should name the key: {stderr}"
    );
}

#[test]
fn starting_on_an_invalid_config_exits_1() {
    let bad = GOOD.replace("upstream = \"api\"", "upstream = \"users\"");
    let file = TempConfig::new(&bad);
    let out = run_cli(&["-c", file.path().to_str().unwrap()]);
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("no upstream named \"users\""),
        "stderr: {stderr}"
    );
}

#[test]
fn help_describes_the_options() {
    let out = run_cli(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for option in ["--config", "--check", "--workers", "--version"] {
        assert!(text.contains(option), "--help lacks {option}:\n{text}");
    }
}

#[test]
fn version_prints_the_package_version() {
    let out = run_cli(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(env!("CARGO_PKG_VERSION")),
        "--version said {text:?}"
    );
}

#[test]
fn shipped_config_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml");
    assert!(
        std::path::Path::new(path).exists(),
        "{path} is not shipped yet"
    );
    let out = run_cli(&["-c", path, "--check"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr_of(&out));
}

#[test]
fn listening_line_reports_every_real_port_once() {
    for_each_driver(|driver| {
        let config = Conf::new(driver).direct("hello", "", "hi").build().replace(
            "listen = [\"127.0.0.1:0\"]",
            "listen = [\"127.0.0.1:0\", \"127.0.0.2:0\"]",
        );
        let gw = Gateway::start(&config);
        assert_eq!(gw.addrs().len(), 2, "stderr:\n{}", gw.stderr());
        assert_ne!(gw.addrs()[0], gw.addrs()[1]);
        for &addr in gw.addrs() {
            assert_ne!(addr.port(), 0);
            assert_eq!(Client::connect(addr).get("/").body_str(), "hi");
        }
        let listening = gw
            .stderr()
            .lines()
            .filter(|l| l.starts_with("listening"))
            .count();
        assert_eq!(listening, 1, "stderr:\n{}", gw.stderr());
    });
}

#[test]
fn every_shard_serves_the_same_port() {
    for_each_driver(|driver| {
        let gw = Conf::new(driver)
            .workers(2)
            .direct("hello", "", "hi")
            .start();
        // Enough connections that SO_REUSEPORT spreads them over both shards.
        for _ in 0..16 {
            assert_eq!(Client::connect(gw.addr()).get("/").body_str(), "hi");
        }
    });
}

#[test]
fn log_names_the_driver_in_use() {
    for_each_driver(|driver| {
        let gw = Conf::new(driver).direct("hello", "", "hi").start();
        gw.wait_for_log(&format!("accepting, driver {driver}"));
    });
}

#[test]
fn auto_driver_starts() {
    let gw = Conf::new("auto").direct("hello", "", "hi").start();
    // Not read back from the log: "auto" must pick io_uring exactly where it works.
    let expected = if io_uring_available() {
        "io_uring"
    } else {
        "epoll"
    };
    gw.wait_for_log(&format!("accepting, driver {expected}"));
    assert_eq!(Client::connect(gw.addr()).get("/").body_str(), "hi");
}

#[test]
fn sigterm_exits_0() {
    for_each_driver(|driver| {
        let gw = Conf::new(driver).direct("hello", "", "hi").start();
        assert_eq!(Client::connect(gw.addr()).get("/").status, 200);
        let status = gw.terminate().expect("gateway did not exit after SIGTERM");
        assert_eq!(status.code(), Some(0));
    });
}

#[test]
fn address_in_use_is_a_runtime_failure_exit_2() {
    for_each_driver(|driver| {
        // A plain std listener (no SO_REUSEPORT) holds the port.
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let config = Conf::new(driver)
            .direct("hello", "", "hi")
            .build()
            .replace("127.0.0.1:0", &taken.local_addr().unwrap().to_string());
        match Gateway::try_start(&config) {
            Ok(gw) => panic!("gateway started on a taken port: {}", gw.stderr()),
            Err(f) => assert_eq!(f.code, Some(2), "stderr:\n{}", f.stderr),
        }
    });
}

#[test]
fn check_names_the_key_of_each_bad_resilience_setting() {
    let bad = "[server]\nlisten = [\"127.0.0.1:0\"]\n\n\
        [[upstreams]]\nname = \"a\"\nbalancer = \"fastest\"\ntargets = [{ addr = \"127.0.0.1:1\" }]\n\n\
        [[upstreams]]\nname = \"b\"\nbalancer = \"round_robin\"\nhash_on = \"ip\"\npanic_mode = \"maybe\"\n\
        targets = [{ addr = \"127.0.0.1:1\" }]\n\
        [upstreams.outlier]\nconsecutive_failures = 0\n\
        [upstreams.health_check]\nexpected_statuses = [\"2xx\"]\n\
        [upstreams.circuit_breaker]\nmax_requests = 0\n\n\
        [[routes]]\nupstream = \"a\"\ntimeout = \"soon\"\n";
    let out = check(bad);
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    for key in [
        "upstreams[0].balancer: unknown balancer \"fastest\"",
        "upstreams[1].hash_on: applies only to balancer = \"consistent_hash\"",
        "upstreams[1].panic_mode: unknown mode \"maybe\"",
        "upstreams[1].outlier.consecutive_failures: must be at least 1",
        "upstreams[1].health_check.expected_statuses:",
        "upstreams[1].circuit_breaker.max_requests: must be at least 1",
        "routes[0].timeout: invalid duration \"soon\"",
    ] {
        assert!(stderr.contains(key), "missing {key:?} in: {stderr}");
    }
}

#[test]
fn check_names_the_key_of_each_bad_retry_setting() {
    let bad = "[server]\nlisten = [\"127.0.0.1:0\"]\n\n\
        [[upstreams]]\nname = \"a\"\ntargets = [{ addr = \"127.0.0.1:1\" }]\n\
        [upstreams.retry]\nattempts = 0\non = [\"5xx\"]\nbudget_percent = 150.0\n\
        backoff_base = \"1s\"\nbackoff_max = \"10ms\"\nper_try_timeout = \"0s\"\n\n\
        [[routes]]\npath = \"/a\"\nupstream = \"a\"\nretry_non_idempotent = true\n\
        [routes.retry]\non = []\nretry_non_idempotent = false\nattempts = 11\n\n\
        [[routes]]\ndirect = { status = 200 }\n[routes.retry]\nattempts = 2\n";
    let out = check(bad);
    let stderr = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    for key in [
        "upstreams[0].retry.attempts: must be between 1 and 10",
        "upstreams[0].retry.on: unknown condition \"5xx\"",
        "upstreams[0].retry.budget_percent: must be between 0 and 100",
        "upstreams[0].retry.backoff_max: 10ms is shorter than backoff_base (1s)",
        "upstreams[0].retry.per_try_timeout: must be greater than 0",
        "routes[0].retry.on: lists no condition",
        "routes[0].retry.attempts: must be between 1 and 10",
        "routes[0].retry_non_idempotent: is also set in routes[0].retry",
        "routes[1].retry: applies only to routes with an upstream",
    ] {
        assert!(stderr.contains(key), "missing {key:?} in: {stderr}");
    }
    // An unknown key in the table is refused like everywhere else.
    let typo = "[server]\nlisten = [\"127.0.0.1:0\"]\n\
        [[upstreams]]\nname = \"a\"\ntargets = [{ addr = \"127.0.0.1:1\" }]\n\
        [upstreams.retry]\nretries = 3\n";
    let out = check(typo);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("upstreams[0].retry"),
        "{}",
        stderr_of(&out)
    );
}
