//! Retries: when a failed try at an upstream may be made again, and how long to wait first.
//!
//! The rules, once for all:
//! - a try that failed for a reason the policy's `on` does not list is final;
//! - "sent" means a byte of the request reached the upstream's socket. A request that was not
//!   sent may always be tried again; one that was sent only when its method is idempotent
//!   (RFC 9110 §9.2.2) or the route allows otherwise, and only when its body is still held in
//!   the replay buffer (`max_replay_body`);
//! - nothing is tried again once a response byte went to the client;
//! - retries in flight for an upstream stay under `budget_percent` of its requests in flight
//!   (but `min_retry_concurrency` are always allowed), counted across shards, so that when a
//!   whole upstream fails, retries cannot multiply its load (Envoy's retry budget).
//!
//! The decisions are pure functions of what happened, so the request path stays readable and
//! the rules are unit-tested here.

use std::cell::Cell;
use std::time::Duration;

/// Why a try failed, in the words of `on = [...]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// The connection could not be made: refused, unreachable, or `connect_timeout`.
    ConnectFailure,
    /// The connection broke, or the response was not valid HTTP, before a response head.
    Reset,
    /// `read_timeout`, `write_timeout` or `per_try_timeout` fired before a response head.
    Timeout,
    /// The upstream answered with this status.
    Status(u16),
}

impl Condition {
    const NAMES: [&'static str; 6] = ["connect_failure", "reset", "timeout", "502", "503", "504"];

    fn bit(self) -> u8 {
        match self {
            Condition::ConnectFailure => 1,
            Condition::Reset => 1 << 1,
            Condition::Timeout => 1 << 2,
            Condition::Status(502) => 1 << 3,
            Condition::Status(503) => 1 << 4,
            Condition::Status(504) => 1 << 5,
            Condition::Status(_) => 0,
        }
    }
}

/// A set of [`Condition`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryOn(u8);

impl RetryOn {
    pub const ALL: RetryOn = RetryOn(0b11_1111);

    pub fn contains(self, c: Condition) -> bool {
        self.0 & c.bit() != 0
    }

    /// The status codes in the set, to know whether a response is worth a look.
    pub fn any_status(self) -> bool {
        self.0 & 0b11_1000 != 0
    }

    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<RetryOn, String> {
        let mut set = 0;
        for name in names {
            let name = name.as_ref();
            let Some(i) = Condition::NAMES.iter().position(|n| *n == name) else {
                return Err(format!(
                    "unknown condition {name:?}; expected some of \"connect_failure\", \"reset\", \"timeout\", \"502\", \"503\", \"504\""
                ));
            };
            set |= 1 << i;
        }
        Ok(RetryOn(set))
    }
}

/// Most tries a request may get: each is a full upstream exchange and a budget keeps retries
/// rare, so more than this would only hide a broken upstream.
pub const MAX_ATTEMPTS: u32 = 10;

/// `[upstreams.retry]`, or a route's, merged over its upstream's.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Tries in all, the first one included; 1 turns retries off.
    pub attempts: u32,
    pub on: RetryOn,
    /// Bounds each try, from picking a target to the response's last byte.
    pub per_try_timeout: Option<Duration>,
    /// The wait before retry n is drawn from [0, min(backoff_max, backoff_base × 2^(n-1))].
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub budget_percent: f64,
    pub min_retry_concurrency: u32,
    /// Request body bytes kept for a replay; a longer body is not retried once sent.
    pub max_replay_body: u64,
    pub retry_non_idempotent: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            attempts: 2,
            on: RetryOn::ALL,
            per_try_timeout: None,
            backoff_base: Duration::from_millis(25),
            backoff_max: Duration::from_millis(250),
            budget_percent: 20.0,
            min_retry_concurrency: 3,
            max_replay_body: 64 * 1024,
            retry_non_idempotent: false,
        }
    }
}

/// What the request looked like when its try failed.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    /// Tries made so far, the failed one included.
    pub tries: u32,
    /// A byte of the request was written to the upstream.
    pub sent: bool,
    /// The request's method is idempotent.
    pub idempotent: bool,
    /// Every body byte sent so far is held for a replay.
    pub replayable: bool,
}

impl Policy {
    /// Whether a try that failed with `why` may be made again, before asking the budget.
    pub fn allows(&self, why: Condition, a: Attempt) -> bool {
        a.tries < self.attempts
            && self.on.contains(why)
            && (!a.sent || (a.replayable && (a.idempotent || self.retry_non_idempotent)))
    }

    /// How many retries may be in flight for an upstream with `active` requests in flight.
    pub fn budget(&self, active: u32) -> u32 {
        let share = (f64::from(active) * self.budget_percent / 100.0) as u32;
        share.max(self.min_retry_concurrency)
    }

    /// The wait before retry number `retry` (1 for the first), with full jitter: drawn
    /// uniformly below the exponential bound, so clients that failed together spread out.
    pub fn backoff(&self, retry: u32) -> Duration {
        let doubled = self
            .backoff_base
            .saturating_mul(1u32 << (retry.saturating_sub(1)).min(16));
        let bound = doubled.min(self.backoff_max).as_micros() as u64;
        if bound == 0 {
            return Duration::ZERO;
        }
        Duration::from_micros(crate::balancer::random_below(next_random(), bound + 1))
    }
}

thread_local! {
    /// Each shard's jitter draws; seeded once per thread, never shared.
    static JITTER: Cell<u64> = Cell::new(crate::balancer::fresh_seed());
}

fn next_random() -> u64 {
    JITTER.with(|state| {
        let (next, value) = crate::balancer::step(state.get());
        state.set(next);
        value
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(tries: u32) -> Attempt {
        Attempt {
            tries,
            sent: true,
            idempotent: true,
            replayable: true,
        }
    }

    #[test]
    fn parses_conditions_and_refuses_unknown_ones() {
        let on = RetryOn::parse(&["connect_failure", "503"]).expect("valid");
        assert!(on.contains(Condition::ConnectFailure));
        assert!(on.contains(Condition::Status(503)));
        assert!(!on.contains(Condition::Status(502)));
        assert!(!on.contains(Condition::Status(500)));
        assert!(!on.contains(Condition::Timeout));
        assert!(on.any_status());
        assert!(!RetryOn::parse(&["reset"]).expect("valid").any_status());
        let e = RetryOn::parse(&["5xx"]).expect_err("unknown");
        assert!(e.contains("\"5xx\""), "{e}");
        assert_eq!(
            RetryOn::parse(&Condition::NAMES).expect("all"),
            RetryOn::ALL
        );
    }

    #[test]
    fn stops_after_the_last_attempt() {
        let p = Policy {
            attempts: 3,
            ..Policy::default()
        };
        assert!(p.allows(Condition::Reset, attempt(1)));
        assert!(p.allows(Condition::Reset, attempt(2)));
        assert!(!p.allows(Condition::Reset, attempt(3)));
    }

    #[test]
    fn a_sent_request_needs_an_idempotent_method_and_its_body() {
        let p = Policy::default();
        let post = Attempt {
            idempotent: false,
            ..attempt(1)
        };
        assert!(!p.allows(Condition::Status(503), post));
        // Not sent: nothing can be duplicated.
        assert!(p.allows(
            Condition::ConnectFailure,
            Attempt {
                sent: false,
                ..post
            }
        ));
        let unbuffered = Attempt {
            replayable: false,
            ..attempt(1)
        };
        assert!(!p.allows(Condition::Reset, unbuffered));
        let permissive = Policy {
            retry_non_idempotent: true,
            ..Policy::default()
        };
        assert!(permissive.allows(Condition::Status(503), post));
        assert!(!permissive.allows(
            Condition::Status(503),
            Attempt {
                replayable: false,
                ..post
            }
        ));
    }

    #[test]
    fn only_listed_conditions_retry() {
        let p = Policy {
            on: RetryOn::parse(&["connect_failure"]).expect("valid"),
            ..Policy::default()
        };
        assert!(p.allows(Condition::ConnectFailure, attempt(1)));
        assert!(!p.allows(Condition::Timeout, attempt(1)));
        assert!(!p.allows(Condition::Status(502), attempt(1)));
    }

    #[test]
    fn budget_is_a_share_of_active_requests_with_a_floor() {
        let p = Policy {
            budget_percent: 20.0,
            min_retry_concurrency: 3,
            ..Policy::default()
        };
        assert_eq!(p.budget(0), 3);
        assert_eq!(p.budget(10), 3);
        assert_eq!(p.budget(100), 20);
        let none = Policy {
            budget_percent: 0.0,
            min_retry_concurrency: 0,
            ..Policy::default()
        };
        assert_eq!(none.budget(1000), 0);
    }

    #[test]
    fn backoff_is_jittered_under_an_exponential_bound() {
        let p = Policy {
            backoff_base: Duration::from_millis(10),
            backoff_max: Duration::from_millis(35),
            ..Policy::default()
        };
        for (retry, bound) in [(1, 10), (2, 20), (3, 35), (4, 35), (40, 35)] {
            let mut longest = Duration::ZERO;
            for _ in 0..2000 {
                let d = p.backoff(retry);
                assert!(d <= Duration::from_millis(bound), "retry {retry}: {d:?}");
                longest = longest.max(d);
            }
            // Uniform draws: the longest of 2000 is within 5% of the bound (p of failing < 1e-40).
            assert!(
                longest * 20 >= Duration::from_millis(bound) * 19,
                "{longest:?}"
            );
        }
        let zero = Policy {
            backoff_base: Duration::ZERO,
            ..Policy::default()
        };
        assert_eq!(zero.backoff(1), Duration::ZERO);
    }
}
