//! The Prometheus text exposition format, version 0.0.4: `# HELP` and `# TYPE` lines, then
//! one `name{label="value",...} number` line per series.

use std::fmt::{Display, Write};

/// `# HELP` and `# TYPE` for a family; `kind` is `counter`, `gauge` or `histogram`.
pub(super) fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    out.push_str("# HELP ");
    out.push_str(name);
    out.push(' ');
    // In HELP text only the backslash and the line feed are escaped.
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push_str("\n# TYPE ");
    out.push_str(name);
    out.push(' ');
    out.push_str(kind);
    out.push('\n');
}

/// One sample line. `name` may be split in two (`base`, `suffix`) so histograms can write
/// `_bucket`, `_sum` and `_count` without building a string.
pub(super) fn sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(&str, &str)],
    value: impl Display,
) {
    out.push_str(name);
    out.push_str(suffix);
    if !labels.is_empty() {
        out.push('{');
        for (i, (label, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(label);
            out.push_str("=\"");
            escape_label_value(out, v);
            out.push('"');
        }
        out.push('}');
    }
    // Writing into a String cannot fail.
    let _ = writeln!(out, " {value}");
}

/// Label values escape the backslash, the double quote and the line feed; everything else,
/// any UTF-8 included, is written as it is.
fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        sample(
            &mut out,
            "m",
            "_total",
            &[("route", "a\"b\\c\nd"), ("x", "é")],
            3u64,
        );
        assert_eq!(out, "m_total{route=\"a\\\"b\\\\c\\nd\",x=\"é\"} 3\n");
    }

    #[test]
    fn no_braces_without_labels() {
        let mut out = String::new();
        sample(&mut out, "shardgate_draining", "", &[], 0);
        assert_eq!(out, "shardgate_draining 0\n");
    }

    #[test]
    fn help_escapes_backslash_and_newline_only() {
        let mut out = String::new();
        family(&mut out, "m", "gauge", "a \"q\" \\ b\nc");
        assert_eq!(out, "# HELP m a \"q\" \\\\ b\\nc\n# TYPE m gauge\n");
    }
}
