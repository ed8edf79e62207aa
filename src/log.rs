//! Process log: lifecycle events and errors to stderr, one line each with a level.
//! Never called per request on a shard: a line here takes the stderr lock.

use std::fmt::Arguments;
use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

pub fn parse_level(s: &str) -> Option<Level> {
    match s.to_ascii_lowercase().as_str() {
        "error" => Some(Level::Error),
        "warn" | "warning" => Some(Level::Warn),
        "info" => Some(Level::Info),
        "debug" => Some(Level::Debug),
        _ => None,
    }
}

pub fn enabled(level: Level) -> bool {
    level as u8 <= LEVEL.load(Ordering::Relaxed)
}

fn emit(level: Level, label: &str, args: Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    // Under systemd stderr is the journal; a `<N>` syslog prefix gives each line its priority.
    if *UNDER_JOURNAL {
        let priority = match level {
            Level::Error => 3,
            Level::Warn => 4,
            Level::Info => 6,
            Level::Debug => 7,
        };
        eprintln!("<{priority}>{label} {args}");
    } else {
        eprintln!("{label} {args}");
    }
}

static UNDER_JOURNAL: std::sync::LazyLock<bool> =
    std::sync::LazyLock::new(|| std::env::var_os("JOURNAL_STREAM").is_some());

pub fn error(args: Arguments<'_>) {
    emit(Level::Error, "ERROR", args);
}
pub fn warn(args: Arguments<'_>) {
    emit(Level::Warn, "WARN", args);
}
pub fn info(args: Arguments<'_>) {
    emit(Level::Info, "INFO", args);
}
pub fn debug(args: Arguments<'_>) {
    emit(Level::Debug, "DEBUG", args);
}
