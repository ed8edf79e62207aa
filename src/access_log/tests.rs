//! The access log against real files in a temporary directory: what reaches the file, across
//! reopen, switching and failures, and what is dropped.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::time::UNIX_EPOCH;

use super::*;
use crate::router::no_alloc_tests::allocations_during;

const JSON: AccessLogFormat = AccessLogFormat::Json;

/// A directory of its own for one test, removed afterwards.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("shardgate-access-log-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn file(path: &Path) -> AccessLogPath {
    AccessLogPath::File(path.to_path_buf())
}

/// An entry whose request id tells the lines apart.
fn entry(id: &str) -> Entry<'_> {
    Entry {
        time: UNIX_EPOCH + Duration::from_millis(1_795_242_259_123),
        client: b"192.0.2.1",
        method: b"GET",
        target: b"/",
        version: b"HTTP/1.1",
        host: b"example.com",
        status: 200,
        bytes_sent: 100,
        bytes_received: 40,
        duration: Duration::from_micros(1_500),
        upstream_duration: Some(Duration::from_micros(1_000)),
        upstream_target: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 9001))),
        upstream_tries: 1,
        route: "root",
        request_id: id.as_bytes(),
        referer: b"",
        user_agent: b"test",
    }
}

/// The request ids of the lines in a file, in order.
fn ids(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            value["request_id"]
                .as_str()
                .expect("request_id")
                .to_string()
        })
        .collect()
}

fn log_ids(log: &AccessLog, ids: &[&str]) {
    for id in ids {
        log.log(JSON, &entry(id));
    }
}

/// How many of this process's descriptors are open on `path`.
fn open_descriptors(path: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| target == path)
        .count()
}

#[test]
fn lines_reach_the_file_in_order() {
    let dir = TempDir::new();
    let path = dir.file("access.log");
    let log = AccessLog::start().unwrap();
    log.configure(Some(&file(&path))).unwrap();
    assert!(log.enabled());
    log_ids(&log, &["a", "b", "c"]);
    log.log(AccessLogFormat::Combined, &entry("d"));
    log.flush();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].starts_with(r#"{"time":"2026-11-21T06:24:19.123Z","#));
    assert!(lines[2].ends_with(r#""request_id":"c","referer":"","user_agent":"test"}"#));
    assert!(lines[3].starts_with("192.0.2.1 - - [21/Nov/2026:06:24:19 +0000] \"GET / HTTP/1.1\""));
    assert!(lines[3].ends_with(" route=root id=d"));
    assert_eq!(log.dropped(), 0);
}

#[test]
fn an_existing_file_is_appended_to() {
    let dir = TempDir::new();
    let path = dir.file("access.log");
    std::fs::write(&path, "{\"request_id\":\"old\"}\n").unwrap();
    let log = AccessLog::start().unwrap();
    log.configure(Some(&file(&path))).unwrap();
    log_ids(&log, &["new"]);
    log.flush();
    assert_eq!(ids(&path), ["old", "new"]);
}

/// logrotate's `create` mode: rename the file, then SIGUSR1. Lines logged before the signal
/// end up in the renamed file (even those the writer had not written yet), later ones in a
/// new file at the configured path.
#[test]
fn reopen_after_rename_starts_a_new_file() {
    let dir = TempDir::new();
    let path = dir.file("access.log");
    let rotated = dir.file("access.log.1");
    let log = AccessLog::start().unwrap();
    log.configure(Some(&file(&path))).unwrap();
    log_ids(&log, &["1", "2"]);
    log.flush();
    log_ids(&log, &["3"]);
    std::fs::rename(&path, &rotated).unwrap();
    log.reopen();
    log_ids(&log, &["4", "5"]);
    log.flush();
    assert_eq!(ids(&rotated), ["1", "2", "3"]);
    assert_eq!(ids(&path), ["4", "5"]);
    assert_eq!(open_descriptors(&rotated), 0, "the rotated file is closed");
    assert_eq!(open_descriptors(&path), 1);
}

/// A reopen whose path cannot be created keeps writing to the file that was open.
#[test]
fn a_failed_reopen_keeps_the_old_file() {
    let dir = TempDir::new();
    let sub = dir.file("logs");
    std::fs::create_dir(&sub).unwrap();
    let path = sub.join("access.log");
    let log = AccessLog::start().unwrap();
    log.configure(Some(&file(&path))).unwrap();
    let moved = dir.file("moved");
    std::fs::rename(&sub, &moved).unwrap();
    log.reopen();
    log_ids(&log, &["kept"]);
    log.flush();
    assert_eq!(ids(&moved.join("access.log")), ["kept"]);
}

#[test]
fn switching_path_closes_the_old_file() {
    let dir = TempDir::new();
    let (a, b) = (dir.file("a.log"), dir.file("b.log"));
    let log = AccessLog::start().unwrap();
    log.configure(Some(&file(&a))).unwrap();
    log_ids(&log, &["1"]);
    log.configure(Some(&file(&b))).unwrap();
    log_ids(&log, &["2"]);
    log.flush();
    assert_eq!(ids(&a), ["1"]);
    assert_eq!(ids(&b), ["2"]);
    assert_eq!(open_descriptors(&a), 0);
    assert_eq!(open_descriptors(&b), 1);
}

/// Reload with an unchanged path reopens it too, which also recovers from a failed reopen.
#[test]
fn configuring_the_same_path_again_keeps_appending() {
    let dir = TempDir::new();
    let path = dir.file("access.log");
    let log = AccessLog::start().unwrap();
    log.configure(Some(&file(&path))).unwrap();
    log_ids(&log, &["1"]);
    log.configure(Some(&file(&path))).unwrap();
    log_ids(&log, &["2"]);
    log.flush();
    assert_eq!(ids(&path), ["1", "2"]);
    assert_eq!(open_descriptors(&path), 1);
}

#[test]
fn a_path_that_cannot_be_opened_keeps_the_previous_destination() {
    let dir = TempDir::new();
    let path = dir.file("access.log");
    let log = AccessLog::start().unwrap();
    log.configure(Some(&file(&path))).unwrap();
    let missing = dir.file("no/such/dir/access.log");
    let err = log.configure(Some(&file(&missing))).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert!(log.enabled());
    log_ids(&log, &["still"]);
    log.flush();
    assert_eq!(ids(&path), ["still"]);
}

#[test]
fn off_writes_nothing() {
    let dir = TempDir::new();
    let path = dir.file("access.log");
    let log = AccessLog::start().unwrap();
    assert!(!log.enabled(), "off until configured");
    log_ids(&log, &["never"]);
    log.configure(Some(&file(&path))).unwrap();
    log_ids(&log, &["before off"]);
    log.configure(None).unwrap();
    assert!(!log.enabled());
    log_ids(&log, &["after off"]);
    log.flush();
    assert_eq!(ids(&path), ["before off"]);
    assert_eq!(open_descriptors(&path), 0);
    assert_eq!(log.dropped(), 0, "lines not wanted are not lost lines");
}

#[test]
fn stdout_is_a_destination_and_reopen_leaves_it_alone() {
    let log = AccessLog::start().unwrap();
    log.configure(Some(&AccessLogPath::Stdout)).unwrap();
    assert!(log.enabled());
    log.reopen();
    assert!(log.enabled());
    log.configure(None).unwrap();
    assert!(!log.enabled());
}

/// A stalled writer: the queue takes its capacity, the rest are dropped and counted, and the
/// queued ones are written once the writer moves again.
#[test]
fn a_full_queue_drops_and_counts() {
    let dir = TempDir::new();
    let path = dir.file("access.log");
    let log = AccessLog::start_with_capacity(4).unwrap();
    log.configure(Some(&file(&path))).unwrap();
    let release = log.pause();
    log_ids(&log, &["1", "2", "3", "4", "5", "6", "7"]);
    assert_eq!(log.dropped(), 3);
    drop(release);
    log.flush();
    assert_eq!(ids(&path), ["1", "2", "3", "4"]);
    assert_eq!(log.dropped(), 3);
}

/// `/dev/full` fails every write with ENOSPC: the lines are counted as dropped, later ones
/// too, until the destination is replaced.
#[test]
fn a_write_error_drops_lines_until_the_next_configure() {
    let dir = TempDir::new();
    let path = dir.file("access.log");
    let log = AccessLog::start().unwrap();
    log.configure(Some(&file(Path::new("/dev/full")))).unwrap();
    log_ids(&log, &["1", "2"]);
    log.flush();
    assert_eq!(log.dropped(), 2);
    log_ids(&log, &["3"]);
    log.flush();
    assert_eq!(log.dropped(), 3);
    log.configure(Some(&file(&path))).unwrap();
    log_ids(&log, &["4"]);
    log.flush();
    assert_eq!(ids(&path), ["4"]);
    assert_eq!(log.dropped(), 3);
}

#[test]
fn dropping_the_log_writes_what_is_queued() {
    let dir = TempDir::new();
    let path = dir.file("access.log");
    let log = AccessLog::start().unwrap();
    log.configure(Some(&file(&path))).unwrap();
    let names: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
    for name in &names {
        log.log(JSON, &entry(name));
    }
    drop(log);
    assert_eq!(ids(&path), names);
}

/// Shards logging at once: every line is either in the file, whole, or counted as dropped.
#[test]
fn concurrent_shards_lose_no_line_silently() {
    let dir = TempDir::new();
    let path = dir.file("access.log");
    let log = AccessLog::start_with_capacity(64).unwrap();
    log.configure(Some(&file(&path))).unwrap();
    let (threads, per_thread) = (8, 2_000);
    std::thread::scope(|scope| {
        for t in 0..threads {
            let log = &log;
            scope.spawn(move || {
                for i in 0..per_thread {
                    log.log(JSON, &entry(&format!("{t}-{i}")));
                }
            });
        }
    });
    log.flush();
    let written = ids(&path);
    assert_eq!(written.len() as u64 + log.dropped(), threads * per_thread);
    // Each shard's lines keep their order.
    for t in 0..threads {
        let prefix = format!("{t}-");
        let mine: Vec<u64> = written
            .iter()
            .filter_map(|id| id.strip_prefix(&prefix)?.parse().ok())
            .collect();
        assert!(
            mine.windows(2).all(|w| w[0] < w[1]),
            "shard {t} out of order"
        );
    }
}

/// Once buffers are circulating, `log` allocates nothing: the buffer comes from the pool and
/// the timestamp from the per-thread cache.
#[test]
fn logging_allocates_nothing_in_steady_state() {
    let dir = TempDir::new();
    let path = dir.file("access.log");
    let log = AccessLog::start().unwrap();
    log.configure(Some(&file(&path))).unwrap();
    let mut entry = entry("4bf92f3577b34da6");
    entry.user_agent = b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 \"q\"";
    for format in [AccessLogFormat::Json, AccessLogFormat::Combined] {
        log.log(format, &entry);
    }
    log.flush();
    let mut allocations = 0;
    for i in 0..200u64 {
        entry.time = UNIX_EPOCH + Duration::from_millis(1_795_242_259_000 + i * 10);
        entry.status = 200 + (i % 300) as u16;
        let format = if i % 2 == 0 {
            AccessLogFormat::Json
        } else {
            AccessLogFormat::Combined
        };
        allocations += allocations_during(|| log.log(format, &entry));
        // The writer hands the buffer back before the next line is logged.
        log.flush();
    }
    assert_eq!(allocations, 0);
    assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 202);
}

/// Waits for `path` to hold `want` lines; the writer gets there on its own, without a flush.
fn wait_for_ids(path: &Path, want: &[&str]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while ids(path) != want {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?} never became {want:?}",
            ids(path)
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Lines are written without anyone asking: while they flow (the writer polls), and after a
/// quiet spell long enough for the writer to block on the queue (the line wakes it).
#[test]
fn lines_are_written_without_a_flush() {
    let dir = TempDir::new();
    let path = dir.file("access.log");
    let log = AccessLog::start().unwrap();
    log.configure(Some(&file(&path))).unwrap();
    log_ids(&log, &["1"]);
    wait_for_ids(&path, &["1"]);
    log_ids(&log, &["2"]);
    wait_for_ids(&path, &["1", "2"]);
    std::thread::sleep(writer::POLL_LONGEST * writer::IDLE_POLLS * 3);
    log_ids(&log, &["3"]);
    wait_for_ids(&path, &["1", "2", "3"]);
}
