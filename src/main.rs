//! The `shardgate` binary: command line, config, listeners, shards.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use shardgate::config::Config;
use shardgate::{control, log};

/// Shard-per-core HTTP/1.1 API gateway and reverse proxy.
#[derive(Parser)]
#[command(name = "shardgate", version, about)]
struct Args {
    /// Config file.
    #[arg(short = 'c', long = "config", default_value = "config.toml")]
    config: PathBuf,
    /// Validate the config and exit: 0 when valid, 1 with every error listed.
    #[arg(short = 't', long = "check")]
    check: bool,
    /// Number of shards (overrides server.workers; 0 = one per CPU).
    #[arg(long)]
    workers: Option<usize>,
    /// error, warn, info or debug.
    #[arg(long = "log-level", env = "SHARDGATE_LOG", default_value = "info")]
    log_level: String,
}

const EXIT_CONFIG: u8 = 1;
const EXIT_RUNTIME: u8 = 2;

fn main() -> ExitCode {
    let args = Args::parse();
    match log::parse_level(&args.log_level) {
        Some(level) => log::set_level(level),
        None => {
            eprintln!(
                "unknown log level {:?}; expected error, warn, info or debug",
                args.log_level
            );
            return ExitCode::from(EXIT_CONFIG);
        }
    }
    let (config, hash) = match Config::load_with_hash(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if args.check {
        eprintln!("{}: configuration is valid", args.config.display());
        return ExitCode::SUCCESS;
    }
    raise_nofile_limit();
    let options = control::Options {
        config_path: args.config,
        workers: args.workers,
    };
    match control::run(options, config, hash) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error(format_args!("{e}"));
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// Each connection is a descriptor; the soft limit (often 1024) would cap connections far
/// below what the machine can hold, so it is raised to the hard limit.
fn raise_nofile_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                log::warn(format_args!("could not raise the open-files limit"));
            }
        }
    }
}
