//! Shardgate: a shard-per-core HTTP/1.1 API gateway and edge reverse proxy.
//!
//! # Layout
//!
//! One request, from accept to response, and the file for each step:
//!
//! ```text
//! main.rs                  CLI: parse flags, load the config, hand over to control::run
//! config/                  file.rs (raw TOML) → validate.rs (typed Config, key-path errors);
//!                          resolve.rs turns targets[] into addresses and resolve settings
//! snapshot.rs              everything a shard reads, built per (re)load, swapped via arc-swap
//! shared.rs                the ArcSwap and process-wide counters shards share
//! shard/                   one pinned thread + monoio runtime per CPU
//!   listener.rs              SO_REUSEPORT sockets, one per shard per address
//!   accept.rs                accept loop, max_connections, EMFILE back-off
//!   idle.rs                  deadlines of connections between requests, fired on the tick
//! proxy/                   one client connection
//!   client.rs                idle wait → read head → route → direct answer / forward; errors
//!   body.rs                  where the request body ends (Content-Length / chunked), limits
//!   forward.rs               pick a target per try → retry or relay → outcome for health
//!   attempt.rs               one try: pooled or new connection → send head and body → head
//!   relay.rs                 the response body to the client, re-framed when the sides differ
//!   head.rs                  heads as they cross: hop-by-hop out, X-Forwarded-*, Via, ids
//!   io.rs                    reads and writes with deadlines over monoio's owned buffers
//! http/                    the wire format
//!   request.rs, response.rs  head parsing (httparse) and RFC 9112 framing rules
//!   chunked.rs               chunked transfer coding
//!   path.rs                  path normalisation (dot-segments, percent-decoding)
//!   answers.rs               responses the gateway writes itself
//! router/                  host + path + method + header matching, compiled per snapshot
//! balancer/                choosing a target: one file per algorithm behind `Balance`
//!   round_robin.rs, edf.rs   smooth weighted round robin; EDF heap above 64 targets
//!   least_conn.rs            fewest active per weight, ties weighted round robin
//!   random.rs, p2c.rs        weighted random; power of two choices (alias.rs draws)
//!   ewma.rs                  power of two choices on peak-EWMA latency × (pending + 1)
//!   consistent_hash.rs       Maglev table; hash_key in mod.rs
//!   cells.rs, rng.rs         per-shard state words; SplitMix64
//! upstream/                dialing targets; pool.rs keeps each shard's idle connections
//!   breaker.rs, outlier.rs   circuit-breaker gauges; passive health and ejection
//!   retry.rs                 when a failed try may be made again; backoff; budget
//!
//! Off the request path, beside it:
//!
//! control/                 the management thread: start-up, event loop, drain (mod.rs)
//!   signals.rs               SIGHUP, SIGTERM/SIGINT, SIGUSR1 forwarded onto a channel
//!   reload.rs                the reload thread: file → Config → Snapshot → one store; also
//!                            swaps in the address sets the resolver finds
//!   discovery.rs             starts the resolver and tells it what to watch after each load
//!   listeners.rs             listener ids; new sockets bound before a reload applies
//!   systemd.rs               sd_notify for Type=notify units: READY, RELOADING, STOPPING
//! shard/control.rs         a shard's control task: adopt/retire listeners, drain
//! health/                  active health checks, on their own threads, never a shard's
//!   target.rs                TargetHealth: the flag balancers read (one relaxed load), counters
//!   config.rs                CheckConfig: path, Host, interval, timeout, thresholds, statuses
//!   schedule.rs              who is due when; runs of passes and failures; transitions
//!   probe.rs                 one probe: connect, GET, status line, within one deadline
//!   checker.rs               the scheduler thread and its bounded pool of probe threads
//! discovery/               `name:port` targets: resolved at load, again every resolve_interval
//!   dns.rs                   A/AAAA queries and responses (RFC 1035), checked against the query
//!   udp.rs                   asking a `resolver = "ip:port"` over UDP, within a deadline
//!   system.rs                getaddrinfo, on a thread of its own so a timeout holds
//!   resolver.rs              the resolver thread: who is due, one lookup thread per name
//! metrics/                 what shards count per request, summed when scraped
//!   per_shard.rs             cache-padded single-writer cells, one per shard
//!   histogram.rs             duration buckets (Prometheus `le`)
//!   route.rs, target.rs      series by route name and by (upstream, target address)
//!   text.rs, render.rs       the Prometheus text exposition, format 0.0.4
//! admin/                   the admin listener on plain threads
//!   mod.rs                   accept loop, connection cap, one thread per connection
//!   conn.rs                  HTTP/1.1 on a blocking socket: heads, keep-alive, answers
//!   endpoints.rs             /healthz, /metrics, /config, /upstreams, /reload
//!   redact.rs                secrets out of the config before GET /config shows it
//! access_log/              one line per request: format.rs on the shard, writer.rs on its thread
//! ```

pub mod access_log;
pub mod admin;
pub mod balancer;
pub mod config;
pub mod control;
pub mod discovery;
pub mod health;
pub mod http;
pub mod log;
pub mod metrics;
pub mod proxy;
pub mod router;
pub mod shard;
pub mod shared;
pub mod snapshot;
pub mod upstream;
