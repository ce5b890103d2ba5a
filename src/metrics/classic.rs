//! The classic Prometheus text format (0.0.4), rendered from prometheus-client's OpenMetrics
//! text for clients (and promtool) that do not take OpenMetrics.

use std::fmt::Write as _;

/// Rewrites OpenMetrics text as the classic format: counter and info families are named by
/// their samples (`_total`, `_info`), info becomes a gauge, `# UNIT` and `# EOF` go.
pub fn openmetrics_to_classic(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // prometheus-client writes HELP before TYPE; the HELP name depends on the type.
    let mut pending_help: Option<(&str, &str)> = None;
    for line in text.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            pending_help = Some(rest.split_once(' ').unwrap_or((rest, "")));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let (name, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "unknown" => (name.to_owned(), "untyped"),
                other => (name.to_owned(), other),
            };
            if let Some((_, help)) = pending_help.take() {
                let _ = writeln!(out, "# HELP {name} {help}");
            }
            let _ = writeln!(out, "# TYPE {name} {kind}");
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// One sample line of the classic format.
#[derive(Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// The samples of a classic exposition; comment and malformed lines are passed over.
pub fn samples(text: &str) -> impl Iterator<Item = Sample> + '_ {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(parse_sample)
}

fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_owned();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(body) = rest.strip_prefix('{') {
        rest = body;
        loop {
            rest = rest.trim_start_matches(',');
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after) = rest.split_once("=\"")?;
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next()? {
                    (i, '"') => break i,
                    (_, '\\') => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        c => value.push(c),
                    },
                    (_, c) => value.push(c),
                }
            };
            labels.push((key.to_owned(), value));
            rest = &after[end + 1..];
        }
    }
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(Sample {
        name,
        labels,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_keep_escaped_label_values() {
        let text = "# HELP x_total help\nx_total{a=\"q\\\"uo,te\",b=\"\\\\\"} 3\ny 1.5\n";
        let got: Vec<Sample> = samples(text).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0].labels,
            [("a".into(), "q\"uo,te".into()), ("b".into(), "\\".into())]
        );
        assert_eq!(got[0].value, 3.0);
        assert_eq!((got[1].name.as_str(), got[1].value), ("y", 1.5));
    }
}
