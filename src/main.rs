//! The `shardgate` binary: command line, config, listeners, shards.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use shardgate::config::Config;
use shardgate::log;
use shardgate::shard::{self, listener, ShardPlan};
use shardgate::shared::Shared;
use shardgate::snapshot::{Snapshot, TargetRegistry};

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
    match run(config, hash, args.workers) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error(format_args!("{e}"));
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn run(config: Config, hash: String, workers: Option<usize>) -> Result<(), String> {
    // Installed first, so a stop signal during start-up still ends the process cleanly.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    raise_nofile_limit();
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let shards = match workers.unwrap_or(config.server.workers) {
        0 => cores.len().max(1),
        n => n,
    };
    let driver = config.server.driver;
    let (bound, mut per_shard) =
        listener::bind_all(&config.server.listen, shards).map_err(|e| e.to_string())?;

    let mut registry = TargetRegistry::default();
    let shared = Shared::new(Snapshot::build(config, hash, &mut registry, shards));

    let (ready_tx, ready_rx) = crossbeam_channel::unbounded();
    let mut threads = Vec::with_capacity(shards);
    for id in 0..shards {
        let plan = ShardPlan {
            id,
            core: (!cores.is_empty()).then(|| cores[id % cores.len()]),
            driver,
            listeners: std::mem::take(&mut per_shard[id]),
        };
        threads.push(
            shard::spawn(plan, shared.clone(), ready_tx.clone())
                .map_err(|e| format!("cannot start shard {id}: {e}"))?,
        );
    }
    drop(ready_tx);
    for _ in 0..shards {
        match ready_rx.recv() {
            Ok((id, Ok(driver))) => {
                log::info(format_args!("shard {id}: accepting, driver {driver}"))
            }
            Ok((id, Err(e))) => return Err(format!("shard {id}: {e}")),
            Err(_) => return Err("a shard exited during start-up".into()),
        }
    }
    let addrs: Vec<String> = bound.iter().map(ToString::to_string).collect();
    eprintln!("listening {}", addrs.join(", "));

    // Shards run until the process exits; the main thread waits for a stop signal.
    // TODO(issue 3): drain in-flight requests before exiting.
    if let Some(signal) = signals.forever().next() {
        log::info(format_args!("signal {signal}: exiting"));
    }
    drop(threads);
    Ok(())
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
