//! The kubectl-style text rendering of a page of archived events (`Accept: text/plain` or
//! `?format=table`), for people using curl.

use jiff::Timestamp;

use crate::archive::query::Page;

/// How long ago, the way kubectl prints it: `45s`, `12m`, `3h`, `2d`.
pub fn age(since: Timestamp, now: Timestamp) -> String {
    let secs = now.duration_since(since).as_secs().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7_200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3_600),
        s => format!("{}d", s / 86_400),
    }
}

/// The page as an aligned text table like `kubectl get events` (NAMESPACE first when the
/// query spans namespaces, as with `-A`).
pub fn table(page: &Page, with_namespace: bool, now: Timestamp) -> String {
    use std::fmt::Write;
    let mut rows: Vec<Vec<String>> = vec![
        [
            "NAMESPACE",
            "LAST SEEN",
            "TYPE",
            "REASON",
            "OBJECT",
            "MESSAGE",
            "COUNT",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for e in &page.items {
        rows.push(vec![
            e.namespace.clone(),
            age(e.last_seen, now),
            e.type_.as_str().to_owned(),
            e.reason.clone(),
            format!("{}/{}", e.regarding.kind.to_lowercase(), e.regarding.name),
            e.message.replace(['\n', '\r', '\t'], " "),
            e.count.to_string(),
        ]);
    }
    if !with_namespace {
        for row in &mut rows {
            row.remove(0);
        }
    }
    let columns = rows[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if c + 1 < columns {
                line.extend(std::iter::repeat_n(
                    ' ',
                    widths[c] - cell.chars().count() + 3,
                ));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if let Some(cursor) = &page.next_cursor {
        let _ = writeln!(out, "# more: add cursor={} to the query", cursor.encode());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        let now: Timestamp = "2026-11-29T12:00:00Z".parse().unwrap();
        let ago = |s: i64| age(now - jiff::SignedDuration::from_secs(s), now);
        assert_eq!(
            [ago(45), ago(600), ago(10_800), ago(259_200), ago(-5)],
            ["45s", "10m", "3h", "3d", "0s"]
        );
    }
}
