//! Secrets out of the config before `GET /config` shows it.
//!
//! The rule is by key name, so it also covers what later issues add (auth filters' tokens, TLS
//! key files) and what operators write as header matchers (`headers = { "X-Api-Key" = ".." }`).

use serde_json::Value;

pub(super) const REDACTED: &str = "[redacted]";

/// A key containing one of these (in any case) has its value replaced. `authorization` and
/// `cookie` are there for header matchers, whose values are credentials. `keepalive_timeout`
/// contains none of them and stays visible.
const SECRET_WORDS: [&str; 6] = [
    "secret",
    "password",
    "token",
    "key",
    "authorization",
    "cookie",
];

/// Replaces, at any depth, every non-null value whose key names a secret. Whole values go,
/// tables and arrays included: a secret split into parts is still a secret.
pub(super) fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if is_secret(key) && !v.is_null() {
                    *v = Value::String(REDACTED.to_string());
                } else {
                    redact(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|word| key.contains(word))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn secrets_go_at_any_depth_in_any_case() {
        let mut v = json!({
            "server": { "keepalive_timeout": "60s", "listen": ["127.0.0.1:80"] },
            "api_key": "k",
            "routes": [
                { "headers": { "X-Api-Key": "abc", "Authorization": "Bearer x", "X-Env": "prod" } },
                { "name": "tokens", "upstream": "u" }
            ],
            "auth": { "ClientSecret": { "parts": ["a", "b"] }, "PASSWORD": 12, "Token": null },
            "monkey": "business"
        });
        redact(&mut v);
        assert_eq!(
            v,
            json!({
                "server": { "keepalive_timeout": "60s", "listen": ["127.0.0.1:80"] },
                "api_key": REDACTED,
                "routes": [
                    { "headers": { "X-Api-Key": REDACTED, "Authorization": REDACTED, "X-Env": "prod" } },
                    // A value that merely says "tokens" is not a secret: keys decide.
                    { "name": "tokens", "upstream": "u" }
                ],
                // Absent stays visibly absent.
                "auth": { "ClientSecret": REDACTED, "PASSWORD": REDACTED, "Token": null },
                // Over-redacting a harmless key is the safe mistake.
                "monkey": REDACTED
            })
        );
    }

    #[test]
    fn keepalive_keys_stay() {
        for key in [
            "keepalive_timeout",
            "KeepAlive",
            "keep-alive",
            "max_idle_per_target",
        ] {
            assert!(!is_secret(key), "{key}");
        }
    }
}
