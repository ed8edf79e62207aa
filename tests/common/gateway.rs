//! Starting the real `shardgate` binary, reading its `listening` line and
//! logs, and running every test under both I/O drivers.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::admin::Admin;

pub const BIN: &str = env!("CARGO_BIN_EXE_shardgate");

/// How long the gateway may take to print `listening` or a log line.
pub const START_GUARD: Duration = Duration::from_secs(10);
/// How long a CLI invocation or a shutdown may take.
pub const EXIT_GUARD: Duration = Duration::from_secs(10);

/// A config file in the temp dir, removed on drop.
pub struct TempConfig {
    path: PathBuf,
}

impl TempConfig {
    pub fn new(text: &str) -> TempConfig {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let path = std::env::temp_dir().join(format!(
            "shardgate-test-{}-{}-{nanos}.toml",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::write(&path, text).unwrap();
        TempConfig { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A unique path in the temp dir for a file the gateway creates (an access
/// log); that file and `<path>.1` are removed on drop.
pub struct TempPath {
    path: PathBuf,
}

impl TempPath {
    pub fn new(what: &str) -> TempPath {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        TempPath {
            path: std::env::temp_dir().join(format!(
                "shardgate-test-{}-{}-{nanos}.{what}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::SeqCst)
            )),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `<path>.1`, where a rotation moves the file.
    pub fn rotated(&self) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(".1");
        PathBuf::from(name)
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_file(self.rotated());
    }
}

#[derive(Default)]
struct LogState {
    lines: Vec<String>,
    closed: bool,
}

/// Stderr lines collected by a reader thread.
#[derive(Default)]
struct Log {
    state: Mutex<LogState>,
    changed: Condvar,
}

impl Log {
    /// Waits until `pick` finds something in the lines, or stderr closes,
    /// or the guard passes. Returns what `pick` found.
    fn wait_for<T>(
        &self,
        guard: Duration,
        mut pick: impl FnMut(&[String]) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + guard;
        let mut state = self.state.lock().unwrap();
        loop {
            if let Some(found) = pick(&state.lines) {
                return Some(found);
            }
            let now = Instant::now();
            if state.closed || now >= deadline {
                return None;
            }
            state = self.changed.wait_timeout(state, deadline - now).unwrap().0;
        }
    }

    fn text(&self) -> String {
        self.state.lock().unwrap().lines.join("\n")
    }
}

/// Why a gateway did not come up.
#[derive(Debug)]
pub struct StartFailure {
    /// Exit code, None when it was killed or still running at the guard.
    pub code: Option<i32>,
    pub stderr: String,
}

pub struct Gateway {
    child: Child,
    addrs: Vec<SocketAddr>,
    log: Arc<Log>,
    config: TempConfig,
    /// `[admin] listen` as the config file first said, used only when the
    /// gateway does not print its `admin listening` line.
    admin_hint: Option<SocketAddr>,
}

impl Gateway {
    /// Starts the gateway on `config` and waits for its `listening` line.
    pub fn start(config: &str) -> Gateway {
        Gateway::try_start(config).unwrap_or_else(|f| {
            panic!(
                "gateway did not start (exit code {:?}); stderr:\n{}\nconfig:\n{config}",
                f.code, f.stderr
            )
        })
    }

    pub fn try_start(config: &str) -> Result<Gateway, StartFailure> {
        let config_file = TempConfig::new(config);
        let mut child = Command::new(BIN)
            .arg("-c")
            .arg(config_file.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {BIN}: {e}"));
        let log = Arc::new(Log::default());
        let stderr = child.stderr.take().unwrap();
        {
            let log = log.clone();
            thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    log.state.lock().unwrap().lines.push(line);
                    log.changed.notify_all();
                }
                log.state.lock().unwrap().closed = true;
                log.changed.notify_all();
            });
        }
        let listening = log.wait_for(START_GUARD, |lines| {
            lines
                .iter()
                .find_map(|l| l.strip_prefix("listening "))
                .map(str::to_string)
        });
        let Some(listening) = listening else {
            let _ = child.kill();
            let code = wait_with_guard(&mut child).and_then(|s| s.code());
            return Err(StartFailure {
                code,
                stderr: log.text(),
            });
        };
        let addrs = listening
            .split(", ")
            .map(|a| {
                a.trim()
                    .parse()
                    .unwrap_or_else(|e| panic!("bad address {a:?} in `listening {listening}`: {e}"))
            })
            .collect();
        Ok(Gateway {
            child,
            addrs,
            log,
            config: config_file,
            admin_hint: admin_listen(config),
        })
    }

    /// The first listener's real address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the gateway wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.log.text()
    }

    /// Waits (guarded) for a stderr line containing `needle` and returns it.
    pub fn wait_for_log(&self, needle: &str) -> String {
        self.log
            .wait_for(START_GUARD, |lines| {
                lines.iter().find(|l| l.contains(needle)).cloned()
            })
            .unwrap_or_else(|| {
                panic!(
                    "no log line containing {needle:?}; stderr:\n{}",
                    self.stderr()
                )
            })
    }

    /// A mark in the log: `wait_for_log_since` only sees lines after it.
    pub fn log_mark(&self) -> usize {
        self.log.state.lock().unwrap().lines.len()
    }

    /// Waits (guarded) for a stderr line after `mark` that satisfies `pick`.
    pub fn wait_for_log_since(&self, mark: usize, pick: impl Fn(&str) -> bool) -> Option<String> {
        self.log.wait_for(START_GUARD, |lines| {
            lines.get(mark..)?.iter().find(|l| pick(l)).cloned()
        })
    }

    /// Stderr lines after `mark`, as they are now.
    pub fn log_since(&self, mark: usize) -> Vec<String> {
        let state = self.log.state.lock().unwrap();
        state.lines.get(mark..).unwrap_or_default().to_vec()
    }

    /// The config file the gateway was started with (and reloads from).
    pub fn config_path(&self) -> &Path {
        self.config.path()
    }

    /// Rewrites the config file in place (same path, same inode).
    pub fn rewrite_config(&self, text: &str) {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(self.config.path())
            .unwrap_or_else(|e| panic!("rewrite {}: {e}", self.config.path().display()));
        file.write_all(text.as_bytes()).unwrap();
        file.sync_all().unwrap();
    }

    pub fn signal(&self, sig: libc::c_int) {
        signal(self.child.id(), sig);
    }

    /// The exit status, once the process has exited (guarded).
    pub fn wait_exit(&mut self) -> Option<ExitStatus> {
        wait_with_guard(&mut self.child)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }

    /// The admin listener: the address from the gateway's `admin listening
    /// ADDR` line, or, failing that line, the configured address once it
    /// accepts connections. Guarded.
    pub fn admin(&self) -> Admin {
        let deadline = Instant::now() + START_GUARD;
        loop {
            let announced = self.log.wait_for(Duration::from_millis(20), |lines| {
                lines.iter().find_map(|l| {
                    let (_, rest) = l.split_once("admin listening ")?;
                    rest.split_whitespace().next()?.parse::<SocketAddr>().ok()
                })
            });
            if let Some(addr) = announced {
                return Admin::new(addr);
            }
            if let Some(hint) = self.admin_hint {
                if TcpStream::connect(hint).is_ok() {
                    return Admin::new(hint);
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "no `admin listening` line and nothing accepting on {:?}; stderr:\n{}",
                    self.admin_hint,
                    self.stderr()
                );
            }
        }
    }

    /// Rewrites the config file, sends SIGHUP, and waits (guarded) until
    /// `shardgate_reloads_total{result}` goes up, `result` being "success"
    /// or "failure". One reload at a time: signals sent in a burst merge.
    pub fn reload_by_sighup(&self, admin: &Admin, text: &str, result: &str) {
        let counter = || {
            admin
                .metric("shardgate_reloads_total", &[("result", result)])
                .unwrap_or(0.0)
        };
        let before = counter();
        self.rewrite_config(text);
        self.signal(libc::SIGHUP);
        let deadline = Instant::now() + START_GUARD;
        while counter() <= before {
            if Instant::now() >= deadline {
                panic!(
                    "shardgate_reloads_total{{result=\"{result}\"}} still {before} {START_GUARD:?} \
                     after SIGHUP; stderr:\n{}",
                    self.stderr()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends SIGTERM and waits (guarded) for the exit status.
    pub fn terminate(mut self) -> Option<ExitStatus> {
        signal(self.child.id(), libc::SIGTERM);
        wait_with_guard(&mut self.child)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            signal(self.child.id(), libc::SIGTERM);
            if wait_with_guard(&mut self.child).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        if thread::panicking() {
            println!("--- gateway stderr ---\n{}\n---", self.log.text());
        }
    }
}

/// The `listen` value of the `[admin]` table in a config text, if any.
fn admin_listen(config: &str) -> Option<SocketAddr> {
    let mut in_admin = false;
    for line in config.lines().map(str::trim) {
        if line.starts_with('[') {
            in_admin = line == "[admin]";
        } else if in_admin {
            if let Some(value) = line.strip_prefix("listen") {
                let value = value.trim_start().strip_prefix('=')?.trim();
                return value.trim_matches('"').parse().ok();
            }
        }
    }
    None
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: plain kill(2) on our own child.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Waits for a child to exit, for at most EXIT_GUARD. None if it did not.
fn wait_with_guard(child: &mut Child) -> Option<ExitStatus> {
    let deadline = Instant::now() + EXIT_GUARD;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Runs the binary with `args` to completion (guarded) and returns its output.
pub fn run_cli(args: &[&str]) -> Output {
    let child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {BIN}: {e}"));
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(EXIT_GUARD) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            signal(pid, libc::SIGKILL);
            panic!(
                "`shardgate {}` did not exit within {EXIT_GUARD:?}",
                args.join(" ")
            )
        }
    }
}

/// Runs `--check` on a config text.
pub fn check(config: &str) -> Output {
    let file = TempConfig::new(config);
    run_cli(&["-c", file.path().to_str().unwrap(), "--check"])
}

/// Whether driver = "io_uring" works here; probed once per test binary.
/// An io_uring failure must be exit code 2 mentioning io_uring: anything
/// else is a gateway bug and fails the test.
pub fn io_uring_available() -> bool {
    static PROBE: OnceLock<bool> = OnceLock::new();
    *PROBE.get_or_init(|| {
        let config = Conf::new("io_uring")
            .direct("probe", "", "probe")
            .build();
        match Gateway::try_start(&config) {
            Ok(_gateway) => true,
            Err(f) if f.code == Some(2) && f.stderr.contains("io_uring") => {
                // Straight to fd 2: libtest captures print macros only.
                let _ = writeln!(
                    std::io::stderr(),
                    "\n!!!!!!!!\n!!!!!!!! io_uring unavailable on this machine: SKIPPING the io_uring run\n!!!!!!!! gateway said: {}\n!!!!!!!!\n",
                    f.stderr.replace('\n', " | ")
                );
                false
            }
            Err(f) => panic!(
                "gateway with driver = \"io_uring\" neither started nor failed with exit 2 \
                 naming io_uring: exit code {:?}, stderr:\n{}",
                f.code, f.stderr
            ),
        }
    })
}

/// The drivers every test runs under: io_uring (when it works) and epoll.
pub fn drivers() -> Vec<&'static str> {
    if io_uring_available() {
        vec!["io_uring", "epoll"]
    } else {
        vec!["epoll"]
    }
}

/// Runs a test body once per driver; the driver goes into `Conf::new`.
pub fn for_each_driver(test: impl Fn(&str)) {
    for driver in drivers() {
        // Shown with the output of a failing test.
        println!("=== driver = \"{driver}\"");
        test(driver);
    }
}

/// A gateway config under construction. The builder only writes TOML; the
/// contract (key names, units) is what the text says.
pub struct Conf {
    driver: String,
    workers: u32,
    listen: Vec<String>,
    server: String,
    limits: String,
    sections: String,
}

impl Conf {
    pub fn new(driver: &str) -> Conf {
        Conf {
            driver: driver.to_string(),
            workers: 1,
            listen: vec!["127.0.0.1:0".to_string()],
            server: String::new(),
            limits: String::new(),
            sections: String::new(),
        }
    }

    pub fn workers(mut self, workers: u32) -> Conf {
        self.workers = workers;
        self
    }

    /// Replaces `server.listen` (default `["127.0.0.1:0"]`).
    pub fn listen(mut self, addrs: &[&str]) -> Conf {
        self.listen = addrs.iter().map(|a| a.to_string()).collect();
        self
    }

    /// An `[admin]` table listening on `addr`.
    pub fn admin(self, addr: SocketAddr) -> Conf {
        self.section(&format!("[admin]\nlisten = \"{addr}\""))
    }

    /// An `[access_log]` table.
    pub fn access_log(self, format: &str, path: &Path) -> Conf {
        self.section(&format!(
            "[access_log]\nformat = \"{format}\"\npath = \"{}\"",
            path.display()
        ))
    }

    /// Any TOML text, appended after the upstreams and routes so far.
    pub fn section(mut self, text: &str) -> Conf {
        write!(self.sections, "\n{text}\n").unwrap();
        self
    }

    /// An extra `[server]` line, e.g. `via = false`.
    pub fn server(mut self, line: &str) -> Conf {
        writeln!(self.server, "{line}").unwrap();
        self
    }

    /// A `[server.limits]` line, e.g. `max_headers = 10`.
    pub fn limit(mut self, line: &str) -> Conf {
        writeln!(self.limits, "{line}").unwrap();
        self
    }

    /// An upstream with weight-1 targets and default settings.
    pub fn upstream(self, name: &str, targets: &[SocketAddr]) -> Conf {
        let weighted: Vec<_> = targets.iter().map(|&a| (a, 1)).collect();
        self.upstream_with(name, &weighted, "")
    }

    /// An upstream with weighted targets and extra lines (timeouts, pool...).
    pub fn upstream_with(mut self, name: &str, targets: &[(SocketAddr, u32)], extra: &str) -> Conf {
        let targets: Vec<String> = targets
            .iter()
            .map(|(addr, weight)| format!("{{ addr = \"{addr}\", weight = {weight} }}"))
            .collect();
        write!(
            self.sections,
            "\n[[upstreams]]\nname = \"{name}\"\ntargets = [{}]\n{extra}\n",
            targets.join(", ")
        )
        .unwrap();
        self
    }

    /// A route: `name` plus its lines (matchers, `upstream = ...`, ...).
    pub fn route(mut self, name: &str, lines: &str) -> Conf {
        write!(self.sections, "\n[[routes]]\nname = \"{name}\"\n{lines}\n").unwrap();
        self
    }

    /// A route answering `200 text/plain` with `body` itself.
    pub fn direct(self, name: &str, matchers: &str, body: &str) -> Conf {
        self.route(
            name,
            &format!(
                "{matchers}\ndirect = {{ status = 200, body = \"{body}\", content_type = \"text/plain\" }}"
            ),
        )
    }

    /// A route sending every request to upstream `upstream`.
    pub fn proxy_all(self, upstream: &str) -> Conf {
        self.route("all", &format!("upstream = \"{upstream}\""))
    }

    pub fn build(&self) -> String {
        let listen = self
            .listen
            .iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "[server]\nlisten = [{}]\nworkers = {}\ndriver = \"{}\"\n{}\n[server.limits]\n{}\n{}",
            listen, self.workers, self.driver, self.server, self.limits, self.sections
        )
    }

    pub fn start(&self) -> Gateway {
        Gateway::start(&self.build())
    }
}
