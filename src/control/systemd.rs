//! Telling systemd where the process is in its life (`sd_notify(3)`), for `Type=notify` units.
//!
//! The protocol is one datagram of `KEY=value` lines to the unix socket named by
//! `$NOTIFY_SOCKET`, so it needs no libsystemd: a `UnixDatagram` does it. Outside systemd the
//! variable is unset and every call does nothing. Errors are ignored on purpose: a lost
//! notification must never stop the gateway (at worst systemd times the start or reload out and
//! says so in the journal), and there is nobody to report them to.
//!
//! The main thread calls these: [`ready`] once every shard accepts, [`reloading`] then [`ready`]
//! around a reload (SIGHUP or `POST /reload`), [`stopping`] when a drain begins. A refused
//! reload still ends with [`ready`] (the old config serves on): systemd keeps the unit in
//! "reloading" until READY=1 arrives. [`status`] is the place to say how the reload went.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;

/// Sends `state` (one or more `KEY=value` lines) to systemd's notification socket. Does nothing
/// when `$NOTIFY_SOCKET` is unset or the send fails.
pub fn notify(state: &str) {
    if let Some(socket) = std::env::var_os("NOTIFY_SOCKET") {
        let _ = send(&socket, state);
    }
}

/// Start-up is complete, or a reload has finished: the unit becomes (again) active.
pub fn ready() {
    notify("READY=1");
}

/// A reload begins; [`ready`] ends it, whatever its outcome. systemd 253 and later want the
/// monotonic timestamp too, so that they can tell this reload's READY=1 from an older one
/// (`Type=notify-reload` needs it; older versions ignore the extra line).
pub fn reloading() {
    notify(&reloading_message(monotonic_usec()));
}

/// A graceful stop begins (SIGTERM or SIGINT): systemd shows the unit as deactivating while
/// connections drain.
pub fn stopping() {
    notify("STOPPING=1");
}

/// A free-form line that `systemctl status` shows, e.g. the outcome of the last reload.
pub fn status(text: &str) {
    // A newline would end the STATUS= field and start a bogus key.
    notify(&format!("STATUS={}", text.replace('\n', " ")));
}

fn reloading_message(monotonic_usec: u64) -> String {
    format!("RELOADING=1\nMONOTONIC_USEC={monotonic_usec}")
}

/// CLOCK_MONOTONIC in microseconds: the clock systemd compares MONOTONIC_USEC against
/// (`std::time::Instant` is the same clock on Linux but does not expose its value).
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the struct we pass; CLOCK_MONOTONIC always exists on
    // Linux, so it cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

/// `socket` as sd_notify reads it: an absolute path, or `@name` for a socket in the abstract
/// namespace (systemd uses those in containers). Anything else is refused, as libsystemd does.
fn send(socket: &OsStr, state: &str) -> io::Result<()> {
    let bytes = socket.as_bytes();
    let addr = match bytes.first() {
        Some(b'@') => SocketAddr::from_abstract_name(&bytes[1..])?,
        Some(b'/') => SocketAddr::from_pathname(Path::new(socket))?,
        _ => return Err(io::ErrorKind::InvalidInput.into()),
    };
    let sock = UnixDatagram::unbound()?;
    let sent = sock.send_to_addr(state.as_bytes(), &addr)?;
    if sent != state.len() {
        return Err(io::ErrorKind::WriteZero.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;

    /// Every test that sets or reads `$NOTIFY_SOCKET` holds this, so tests running on parallel
    /// threads never see each other's value.
    static ENV: Mutex<()> = Mutex::new(());

    /// A directory of its own per test, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "shardgate-notify-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// A bound socket playing systemd's part, with a timeout so a missing datagram fails the
    /// test instead of hanging it.
    fn listener(addr: &SocketAddr) -> UnixDatagram {
        let sock = UnixDatagram::bind_addr(addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        sock
    }

    fn recv(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    /// Runs `f` with `$NOTIFY_SOCKET` set to `value` (or unset), restoring it afterwards.
    fn with_notify_socket(value: Option<&OsStr>, f: impl FnOnce()) {
        let _guard = ENV.lock().unwrap_or_else(|e| e.into_inner());
        let before = std::env::var_os("NOTIFY_SOCKET");
        match value {
            Some(v) => std::env::set_var("NOTIFY_SOCKET", v),
            None => std::env::remove_var("NOTIFY_SOCKET"),
        }
        f();
        match before {
            Some(v) => std::env::set_var("NOTIFY_SOCKET", v),
            None => std::env::remove_var("NOTIFY_SOCKET"),
        }
    }

    #[test]
    fn helpers_send_their_states_to_the_socket_in_notify_socket() {
        let dir = TempDir::new();
        let path = dir.0.join("notify");
        let sock = listener(&SocketAddr::from_pathname(&path).unwrap());
        with_notify_socket(Some(path.as_os_str()), || {
            ready();
            assert_eq!(recv(&sock), "READY=1");
            stopping();
            assert_eq!(recv(&sock), "STOPPING=1");
            status("reload refused:\nconfig.toml: routes[0].upstream: unknown");
            assert_eq!(
                recv(&sock),
                "STATUS=reload refused: config.toml: routes[0].upstream: unknown"
            );

            let before = monotonic_usec();
            reloading();
            let got = recv(&sock);
            let after = monotonic_usec();
            let usec: u64 = got
                .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
                .unwrap_or_else(|| panic!("unexpected message {got:?}"))
                .parse()
                .unwrap();
            assert!(
                (before..=after).contains(&usec),
                "{before} <= {usec} <= {after}"
            );
        });
    }

    #[test]
    fn abstract_socket_names_start_with_at() {
        let name = format!("shardgate-notify-test-{}", std::process::id());
        let sock = listener(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap());
        send(OsStr::new(&format!("@{name}")), "READY=1").unwrap();
        assert_eq!(recv(&sock), "READY=1");
    }

    #[test]
    fn unset_notify_socket_is_a_no_op() {
        with_notify_socket(None, || {
            ready();
            reloading();
            stopping();
            status("idle");
        });
    }

    #[test]
    fn failures_are_ignored() {
        let dir = TempDir::new();
        let nobody_listens = dir.0.join("gone");
        with_notify_socket(Some(nobody_listens.as_os_str()), ready);
        with_notify_socket(Some(OsStr::new("relative/path")), ready);
        with_notify_socket(Some(OsStr::new("")), ready);
        assert!(send(nobody_listens.as_os_str(), "READY=1").is_err());
        assert!(send(OsStr::new("relative/path"), "READY=1").is_err());
    }

    #[test]
    fn reloading_message_has_the_fields_systemd_253_wants() {
        assert_eq!(
            reloading_message(1_234_567),
            "RELOADING=1\nMONOTONIC_USEC=1234567"
        );
    }
}
