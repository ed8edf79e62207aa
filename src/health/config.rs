//! What one active health check asks of a target, as the config layer hands it over.

use std::ops::RangeInclusive;
use std::time::Duration;

/// The check of one upstream's targets (`[upstreams.health_check]`), already typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckConfig {
    /// Request target of the probe, in origin form: `/healthz`.
    pub path: String,
    /// `Host` header of the probe; `None` sends the target's `ip:port`.
    pub host: Option<String>,
    /// From the start of one probe to the start of the next (a probe that outlasts it is
    /// followed by the next as soon as it ends).
    pub interval: Duration,
    /// The whole probe: connect, send the request, read the status line.
    pub timeout: Duration,
    /// Consecutive successes that turn an unhealthy target healthy.
    pub healthy_threshold: u32,
    /// Consecutive failures that turn a healthy target unhealthy.
    pub unhealthy_threshold: u32,
    /// A probe succeeds when its status falls in one of these.
    pub expected_statuses: Vec<RangeInclusive<u16>>,
}

/// Status codes as RFC 9110 §15 defines them: three digits, 100 to 599.
const STATUS_CODES: RangeInclusive<u16> = 100..=599;

impl Default for CheckConfig {
    /// The defaults `config.toml` documents: HAProxy's `rise 2` / `fall 3`, a probe every 5 s
    /// given 2 s to answer, any 2xx or 3xx.
    fn default() -> Self {
        CheckConfig {
            path: "/".into(),
            host: None,
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
            expected_statuses: vec![200..=399],
        }
    }
}

impl CheckConfig {
    /// Parses `expected_statuses` entries: a status (`"204"`) or an inclusive range
    /// (`"200-399"`), each code within 100–599. `Err` names the first bad entry.
    pub fn parse_statuses(items: &[String]) -> Result<Vec<RangeInclusive<u16>>, String> {
        if items.is_empty() {
            return Err("no statuses: every check would fail".into());
        }
        items.iter().map(|item| parse_status_item(item)).collect()
    }

    /// The checks the config layer's `validate()` should make, as one reason per field
    /// (`path: ...`), for it to prefix with the key path. The checker copes with a config
    /// that fails them (a bad path or host makes every probe fail; a zero interval or
    /// threshold is raised to the least workable value) but never gives it meaning.
    pub fn validate(&self) -> Result<(), String> {
        if !self.path.starts_with('/') || !is_visible_ascii(&self.path) {
            return Err(format!(
                "path: {:?} is not an origin-form path (starts with '/', visible ASCII only)",
                self.path
            ));
        }
        if let Some(host) = &self.host {
            if host.is_empty() || !is_visible_ascii(host) {
                return Err(format!("host: {host:?} is not a Host header value"));
            }
        }
        if self.interval.is_zero() {
            return Err("interval: must be above zero".into());
        }
        if self.timeout.is_zero() {
            return Err("timeout: must be above zero".into());
        }
        if self.healthy_threshold == 0 {
            return Err("healthy_threshold: must be at least 1".into());
        }
        if self.unhealthy_threshold == 0 {
            return Err("unhealthy_threshold: must be at least 1".into());
        }
        if self.expected_statuses.is_empty() {
            return Err("expected_statuses: no statuses: every check would fail".into());
        }
        Ok(())
    }

    /// Whether a probe that got `status` succeeded.
    pub fn expects(&self, status: u16) -> bool {
        self.expected_statuses.iter().any(|r| r.contains(&status))
    }
}

fn parse_status_item(item: &str) -> Result<RangeInclusive<u16>, String> {
    let bad =
        || format!("{item:?} is not a status or a range of statuses (e.g. \"204\", \"200-399\")");
    let (first, last) = match item.split_once('-') {
        Some((a, b)) => (a.trim(), b.trim()),
        None => (item.trim(), item.trim()),
    };
    let first = parse_code(first).ok_or_else(bad)?;
    let last = parse_code(last).ok_or_else(bad)?;
    if first > last {
        return Err(format!("{item:?}: the range ends before it starts"));
    }
    Ok(first..=last)
}

/// Exactly three ASCII digits within 100–599 (`u16::from_str` would also take `+200`).
fn parse_code(s: &str) -> Option<u16> {
    if s.len() != 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let code = s.parse().ok()?;
    STATUS_CODES.contains(&code).then_some(code)
}

/// No spaces, controls or non-ASCII: what can go on a request line or in a header value
/// without letting the config inject a header or split the request.
pub(super) fn is_visible_ascii(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(items: &[&str]) -> Result<Vec<RangeInclusive<u16>>, String> {
        let items: Vec<String> = items.iter().map(|s| s.to_string()).collect();
        CheckConfig::parse_statuses(&items)
    }

    #[test]
    fn statuses_take_single_codes_and_ranges() {
        assert_eq!(parse(&["200-399"]), Ok(vec![200..=399]));
        assert_eq!(parse(&["204"]), Ok(vec![204..=204]));
        assert_eq!(
            parse(&["200-299", "404", " 301 - 302 "]),
            Ok(vec![200..=299, 404..=404, 301..=302])
        );
        assert_eq!(parse(&["100-599"]), Ok(vec![100..=599]));
        assert_eq!(parse(&["200-200"]), Ok(vec![200..=200]));
    }

    #[test]
    fn statuses_refuse_bad_entries_naming_them() {
        for bad in [
            "",
            "-",
            "abc",
            "2xx",
            "200-",
            "-399",
            "200-399-400",
            "99",
            "600",
            "1000",
            "0200",
            "+200",
            "200 300",
            "200,300",
            "２００",
            "099-200",
            "200-600",
            "２",
        ] {
            let err = parse(&["204", bad]).expect_err(bad);
            assert!(err.contains(&format!("{bad:?}")), "{bad:?}: {err}");
        }
        let err = parse(&["399-200"]).unwrap_err();
        assert!(err.contains("ends before it starts"), "{err}");
        assert!(parse(&[]).is_err());
    }

    #[test]
    fn expects_any_range() {
        let config = CheckConfig {
            expected_statuses: vec![200..=299, 404..=404],
            ..CheckConfig::default()
        };
        assert!(config.expects(200) && config.expects(299) && config.expects(404));
        assert!(!config.expects(300) && !config.expects(503) && !config.expects(199));
    }

    #[test]
    fn validate_names_the_field() {
        assert_eq!(CheckConfig::default().validate(), Ok(()));
        type Break = fn(&mut CheckConfig);
        let cases: [(&str, Break); 8] = [
            ("path", |c| c.path = "healthz".into()),
            ("path", |c| c.path = "/a b".into()),
            ("path", |c| c.path = "/a\r\nX-Injected: 1".into()),
            ("host", |c| c.host = Some("a\r\nb".into())),
            ("interval", |c| c.interval = Duration::ZERO),
            ("timeout", |c| c.timeout = Duration::ZERO),
            ("healthy_threshold", |c| c.healthy_threshold = 0),
            ("expected_statuses", |c| c.expected_statuses.clear()),
        ];
        for (field, break_it) in cases {
            let mut config = CheckConfig::default();
            break_it(&mut config);
            let err = config.validate().unwrap_err();
            assert!(err.starts_with(&format!("{field}: ")), "{field}: {err}");
        }
    }
}
