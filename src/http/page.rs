//! The history page at `/`, for people who do not curl: the API's query parameters come in, one
//! server-rendered HTML page goes out (a filter form, a table of archived events newest first,
//! paging links), with inline CSS and a small inline script. Everything works without the
//! script; with it the first page refreshes itself and relative times stay live.
//!
//! Every user-supplied string passes through [`Esc`] (HTML text and double-quoted attributes)
//! and every link's query through `serde_urlencoded`. Links are relative (`?…`), so the page
//! also works behind a proxy that serves it under a path prefix.

use std::{
    fmt::{self, Write},
    sync::LazyLock,
};

use axum::{
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use jiff::Timestamp;

use super::ApiError;
use crate::{
    archive::query::{InvalidQuery, Page, Query},
    event::{Event, EventType},
};

/// How often the script refreshes the first page and the relative times, in seconds: often
/// enough to follow an incident, rarely enough that an open tab costs the archive nothing.
pub const REFRESH_SECS: u32 = 10;

/// The text filters of the form, in order: parameter, label, placeholder.
const TEXT_FILTERS: [(&str, &str, &str); 5] = [
    ("namespace", "Namespace", "all"),
    ("workload", "Workload", "Deployment, CronJob, … name"),
    ("kind", "Kind", "Pod, Node, …"),
    ("name", "Name", "involved object"),
    ("reason", "Reason", "BackOff, …"),
];

/// The parameters the page's links carry over: the filters and the page size, not the cursor.
const KEPT: [&str; 11] = [
    "cluster",
    "namespace",
    "workload_kind",
    "workload",
    "kind",
    "name",
    "reason",
    "type",
    "since",
    "until",
    "limit",
];

/// What `since` and `until` accept, as the inputs' tooltip.
const TIME_HINT: &str =
    " title=\"an RFC 3339 time (2026-11-29T10:00:00Z) or a duration back from now (2h, 7d)\"";

/// The table's columns; the narrow-screen layout labels each cell with its column's name.
const COLUMNS: [&str; 7] = [
    "Last seen",
    "Type",
    "Namespace",
    "Object",
    "Reason",
    "Message",
    "Count",
];

/// The query string as the page reads it: exactly the API's parameters, except that an empty
/// value means "no filter". A plain form submits every field, filled or not; the API would
/// answer `namespace=` with a 400.
#[derive(Debug, Default, Clone)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub fn new(mut pairs: Vec<(String, String)>) -> Self {
        pairs.retain(|(_, v)| !v.is_empty());
        Self { pairs }
    }

    /// The API's validation of these parameters.
    pub fn query(&self, now: Timestamp) -> Result<Query, InvalidQuery> {
        Query::parse(&self.pairs, now)
    }

    /// The first value of `key`, as the user typed it; empty when absent.
    fn get(&self, key: &str) -> &str {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.as_str())
    }

    fn has_filters(&self) -> bool {
        self.pairs
            .iter()
            .any(|(k, _)| KEPT.contains(&k.as_str()) && k != "limit")
    }

    /// A relative link to this view (filters and page size), at `cursor` if given.
    fn link(&self, cursor: Option<&str>) -> String {
        let mut pairs: Vec<(&str, &str)> = KEPT
            .iter()
            .filter_map(|k| {
                let v = self.get(k);
                (!v.is_empty()).then_some((*k, v))
            })
            .collect();
        pairs.extend(cursor.map(|c| ("cursor", c)));
        query_link(&pairs)
    }
}

/// `?k=v&…` percent-encoded; `./` (this path, no query) for no pairs.
fn query_link(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return "./".to_owned();
    }
    let query = serde_urlencoded::to_string(pairs).expect("strings always form-encode");
    format!("?{query}")
}

/// The link to everything about an event's involved object: the page filtered to it.
pub fn object_link(namespace: &str, kind: &str, name: &str) -> String {
    query_link(&[("namespace", namespace), ("kind", kind), ("name", name)])
}

/// HTML-escapes text for element content and double-quoted attribute values.
pub struct Esc<'a>(pub &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..at])?;
            f.write_str(match rest.as_bytes()[at] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[at + 1..];
        }
        f.write_str(rest)
    }
}

/// How long ago, in words: `45 s ago`, `12 min ago`, `3 h ago`, `2 d ago`. The script computes
/// the same from the `<time>` element's `datetime` as time passes.
pub fn ago(t: Timestamp, now: Timestamp) -> String {
    let secs = now.duration_since(t).as_secs().max(0);
    match secs {
        s if s < 60 => format!("{s} s ago"),
        s if s < 3_600 => format!("{} min ago", s / 60),
        s if s < 172_800 => format!("{} h ago", s / 3_600),
        s => format!("{} d ago", s / 86_400),
    }
}

/// What the page shows under the form.
pub enum Outcome<'a> {
    /// A page of results.
    Page(&'a Page),
    /// The query was refused (400): the API's message.
    BadQuery(&'a str),
    /// The archive could not answer (5xx): what failed.
    Failed(&'a str),
    /// Access control refused the request (401, 403): why.
    Denied(&'a str),
}

/// The page for `answer` as an HTTP response, with the API's status codes.
pub fn response(params: &Params, answer: &Result<Page, ApiError>, now: Timestamp) -> Response {
    let message;
    let (status, outcome) = match answer {
        Ok(page) => (StatusCode::OK, Outcome::Page(page)),
        Err(e) => {
            message = e.to_string();
            let outcome = match e {
                ApiError::InvalidQuery(_) => Outcome::BadQuery(&message),
                ApiError::Auth(_) if e.status().is_client_error() => Outcome::Denied(&message),
                ApiError::ArchiveFailed(_) | ApiError::Auth(_) | ApiError::HistoryFailed(_) => {
                    Outcome::Failed(&message)
                }
            };
            (e.status(), outcome)
        }
    };
    let headers = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
        (header::CONTENT_SECURITY_POLICY, CSP.as_str()),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    (status, headers, render(params, &outcome, now)).into_response()
}

/// The whole page.
pub fn render(params: &Params, outcome: &Outcome<'_>, now: Timestamp) -> String {
    let rows = match outcome {
        Outcome::Page(p) => p.items.len(),
        _ => 0,
    };
    let mut out = String::with_capacity(6_000 + rows * 600);
    // Writing to a String cannot fail.
    let _ = write_page(&mut out, params, outcome, now);
    out
}

fn write_page(
    out: &mut String,
    params: &Params,
    outcome: &Outcome<'_>,
    now: Timestamp,
) -> fmt::Result {
    write!(
        out,
        "<!doctype html>\n<html lang=en>\n<head>\n<meta charset=utf-8>\n\
         <meta name=viewport content=\"width=device-width, initial-scale=1\">\n\
         <link rel=icon href=\"data:,\">\n\
         <title>{}Kubernetes events</title>\n<style>{CSS}</style>\n</head>\n<body>\n\
         <header><h1><a href=\"./\">Kubernetes events</a></h1></header>\n<main>\n",
        match outcome {
            Outcome::Page(_) => "",
            Outcome::BadQuery(_) => "Bad query · ",
            Outcome::Failed(_) => "Unavailable · ",
            Outcome::Denied(_) => "Not allowed · ",
        }
    )?;
    write_form(out, params)?;
    match outcome {
        Outcome::Page(page) => write_table(out, params, page, now)?,
        Outcome::BadQuery(message) => writeln!(
            out,
            "<p class=error role=alert><strong>This query cannot be answered:</strong> {}. \
             Correct the filters above, or <a href=\"./\">start over</a>.</p>",
            Esc(message)
        )?,
        Outcome::Failed(message) => writeln!(
            out,
            "<p class=error role=alert><strong>The archive cannot answer now:</strong> {}. \
             Try again in a moment.</p>",
            Esc(message)
        )?,
        Outcome::Denied(message) => writeln!(
            out,
            "<p class=error role=alert><strong>You may not read this:</strong> {}. \
             Sign in again, or ask for access to the namespace, or <a href=\"./\">see what \
             you may read</a>.</p>",
            Esc(message)
        )?,
    }
    write!(
        out,
        "</main>\n<script>{}</script>\n</body>\n</html>\n",
        *SCRIPT_TEXT
    )
}

fn write_form(out: &mut String, params: &Params) -> fmt::Result {
    out.push_str("<form class=filters method=get aria-label=Filters>\n");
    for (key, label, placeholder) in TEXT_FILTERS {
        field(out, key, label, placeholder, params.get(key), "")?;
    }
    let type_ = params.get("type");
    write!(
        out,
        "<div><label for=f-type>Type</label><select id=f-type name=type>\
         <option value=\"\">any</option>"
    )?;
    for option in ["Normal", "Warning"] {
        let selected = if type_ == option { " selected" } else { "" };
        write!(out, "<option{selected}>{option}</option>")?;
    }
    if !type_.is_empty() && type_ != "Normal" && type_ != "Warning" {
        // Keep what the user asked for on screen, next to the message that refuses it.
        write!(out, "<option selected>{}</option>", Esc(type_))?;
    }
    out.push_str("</select></div>\n");
    field(
        out,
        "since",
        "Since",
        "2h, 7d or a time",
        params.get("since"),
        &format!(" list=f-ago{TIME_HINT}"),
    )?;
    field(
        out,
        "until",
        "Until",
        "a time or 30m",
        params.get("until"),
        TIME_HINT,
    )?;
    field(
        out,
        "limit",
        "Rows per page",
        "100",
        params.get("limit"),
        " inputmode=numeric class=short",
    )?;
    out.push_str(
        "<datalist id=f-ago><option value=15m><option value=1h><option value=6h>\
         <option value=24h><option value=7d></datalist>\n\
         <div class=actions><button type=submit>Filter</button> <a href=\"./\">Clear</a></div>\n\
         </form>\n",
    );
    Ok(())
}

fn field(
    out: &mut String,
    key: &str,
    label: &str,
    placeholder: &str,
    value: &str,
    extra: &str,
) -> fmt::Result {
    writeln!(
        out,
        "<div><label for=f-{key}>{label}</label><input id=f-{key} name={key} \
         placeholder=\"{placeholder}\" value=\"{}\"{extra}></div>",
        Esc(value)
    )
}

fn write_table(out: &mut String, params: &Params, page: &Page, now: Timestamp) -> fmt::Result {
    let n = page.items.len();
    write!(
        out,
        "<table>\n<caption>{n} event{} {}, newest first<span class=live> · \
         refreshes every {REFRESH_SECS} s</span></caption>\n<thead><tr>",
        if n == 1 { "" } else { "s" },
        if params.has_filters() {
            "matching the filters"
        } else {
            "archived"
        },
    )?;
    for column in COLUMNS {
        write!(out, "<th scope=col>{column}</th>")?;
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    if page.items.is_empty() {
        writeln!(
            out,
            "<tr class=none><td colspan={}>No archived events {}.</td></tr>",
            COLUMNS.len(),
            if params.has_filters() {
                "match these filters"
            } else {
                "yet"
            }
        )?;
    }
    for e in &page.items {
        write_row(out, e, now)?;
    }
    out.push_str("</tbody>\n</table>\n<nav class=pager aria-label=Pages>");
    let at_cursor = !params.get("cursor").is_empty();
    if at_cursor {
        write!(
            out,
            "<a href=\"{}\"><span aria-hidden=true>↖ </span>Newest</a>",
            Esc(&params.link(None))
        )?;
    }
    if let Some(next) = &page.next_cursor {
        write!(
            out,
            "<a href=\"{}\" rel=next>Next page<span aria-hidden=true> →</span></a>",
            Esc(&params.link(Some(&next.encode())))
        )?;
    }
    out.push_str("</nav>\n");
    Ok(())
}

fn write_row(out: &mut String, e: &Event, now: Timestamp) -> fmt::Result {
    let warning = e.type_ == EventType::Warning;
    let seen = e.last_seen.round(jiff::Unit::Second).unwrap_or(e.last_seen);
    write!(
        out,
        "<tr{}><td><time datetime=\"{seen}\" title=\"{seen}\">{}</time></td>",
        if warning { " class=w" } else { "" },
        ago(e.last_seen, now)
    )?;
    if warning {
        out.push_str("<td><strong><span aria-hidden=true>⚠ </span>Warning</strong></td>");
    } else {
        out.push_str("<td>Normal</td>");
    }
    write!(
        out,
        "<td><a href=\"{}\">{}</a></td>",
        Esc(&query_link(&[("namespace", &e.namespace)])),
        Esc(&e.namespace)
    )?;
    let (kind, name) = (&e.regarding.kind, &e.regarding.name);
    write!(
        out,
        "<td><a href=\"{}\">{}{}{}</a></td>",
        Esc(&object_link(&e.namespace, kind, name)),
        Esc(kind),
        if name.is_empty() { "" } else { "/" },
        Esc(name)
    )?;
    let w = &e.workload;
    if w.is_known() && (w.kind != *kind || w.name != *name) {
        // The cell's last child: the workload the object belongs to, and its history.
        out.truncate(out.len() - "</td>".len());
        write!(
            out,
            "<br><small>of <a href=\"{}\">{}/{}</a></small></td>",
            Esc(&query_link(&[
                ("namespace", &e.namespace),
                ("workload_kind", &w.kind),
                ("workload", &w.name),
            ])),
            Esc(&w.kind),
            Esc(&w.name)
        )?;
    }
    writeln!(
        out,
        "<td>{}</td><td class=m>{}</td><td class=n>{}</td></tr>",
        Esc(&e.reason),
        Esc(&e.message),
        e.count
    )
}

/// The script as served: live relative times, a refresh of the first page that swaps in the
/// new rows (keeping the filters, the form's state and the scroll position), and forms that
/// leave empty fields out of the URL. Without it the page is complete, only static.
static SCRIPT_TEXT: LazyLock<String> =
    LazyLock::new(|| SCRIPT.replace("REFRESH_MS", &(REFRESH_SECS * 1000).to_string()));

/// The page's Content-Security-Policy: only its own inline script and style apply (by hash),
/// so markup that slipped past escaping could neither run nor load anything; fetches and forms
/// stay on this origin, and no other site may frame the page.
pub static CSP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'none'; script-src '{}'; style-src '{}'; connect-src 'self'; \
         img-src data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        csp_hash(&SCRIPT_TEXT),
        csp_hash(CSS)
    )
});

/// A CSP source expression for an inline element's text: `sha256-<base64>`.
fn csp_hash(text: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    format!("sha256-{}", base64(digest.as_ref()))
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(DIGITS[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

const SCRIPT: &str = r"
document.documentElement.classList.add('js');
(() => {
  const ago = (t) => {
    const s = Math.max(0, Math.floor((Date.now() - Date.parse(t)) / 1000));
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.floor(s / 60) + ' min ago';
    if (s < 172800) return Math.floor(s / 3600) + ' h ago';
    return Math.floor(s / 86400) + ' d ago';
  };
  const times = () => {
    for (const el of document.querySelectorAll('time[datetime]')) el.textContent = ago(el.dateTime);
  };
  const form = document.querySelector('form.filters');
  if (form) form.addEventListener('formdata', (e) => {
    for (const [k, v] of [...e.formData]) if (v === '') e.formData.delete(k);
  });
  const first = !new URLSearchParams(location.search).has('cursor');
  const refresh = async () => {
    if (!first || document.hidden || !document.querySelector('tbody')) return;
    try {
      const r = await fetch(location.href, {headers: {accept: 'text/html'}});
      if (!r.ok) return;
      const next = new DOMParser().parseFromString(await r.text(), 'text/html');
      for (const sel of ['caption', 'tbody', 'nav.pager']) {
        const old = document.querySelector(sel), fresh = next.querySelector(sel);
        if (old && fresh) old.replaceWith(fresh);
      }
      document.body.dataset.refreshed = String(Date.now());
    } catch (_) { /* offline for a moment: the next tick tries again */ }
  };
  setInterval(async () => { await refresh(); times(); }, REFRESH_MS);
})();
";

const CSS: &str = "
:root{color-scheme:light dark;--bg:#fff;--fg:#1f2328;--mute:#59636e;--line:#d1d9e0;\
--warn:#fff8c5;--warnb:#9a6700;--link:#0550ae;--err:#cf222e}
@media(prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--mute:#9198a1;\
--line:#3d444d;--warn:#2e2500;--warnb:#d29922;--link:#71b7ff;--err:#f85149}}
body{margin:0 auto;max-width:100rem;padding:.75rem 1rem;font:15px/1.4 system-ui,sans-serif;\
background:var(--bg);color:var(--fg)}
a{color:var(--link)}h1{font-size:1.3rem;margin:0 0 .75rem}h1 a{color:inherit;text-decoration:none}
.filters{display:flex;flex-wrap:wrap;gap:.5rem .75rem;align-items:end;margin:0 0 .75rem}
.filters div{display:flex;flex-direction:column}
label{font-size:.8rem;color:var(--mute)}
input,select,button{font:inherit;padding:.25rem .4rem;width:10rem;box-sizing:border-box}
.short{width:6rem}button{width:auto;padding:.25rem 1rem}
.actions{flex-direction:row!important;gap:.75rem;align-items:center}
:focus-visible{outline:3px solid var(--link);outline-offset:2px}
table{border-collapse:collapse;width:100%}
caption{text-align:left;color:var(--mute);padding:.25rem 0}
th,td{text-align:left;vertical-align:top;padding:.3rem .5rem;border-bottom:1px solid var(--line)}
th{position:sticky;top:0;background:var(--bg);white-space:nowrap}
td:nth-child(-n+2){white-space:nowrap}
.m{white-space:pre-wrap;overflow-wrap:anywhere;min-width:18rem}
.n{text-align:right}
tr.w{background:var(--warn)}tr.w td:first-child{box-shadow:inset 4px 0 var(--warnb)}
.error{border:2px solid var(--err);border-radius:4px;padding:.5rem .75rem;white-space:pre-wrap;\
overflow-wrap:anywhere}
.pager{display:flex;gap:1.5rem;margin:1rem 0}
.live{display:none}.js .live{display:inline}
@media(max-width:600px){body{padding:.5rem}input,select{width:9rem}
thead{position:absolute;left:-9999px}table,caption,tbody,tr,td{display:block}
tr.w{box-shadow:inset 4px 0 var(--warnb)}tr.w td:first-child{box-shadow:none}
tr{border-bottom:2px solid var(--line);padding:.3rem 0}td{border:0;padding:.1rem .4rem}
.m{min-width:0}.n{text-align:left}
tbody tr:not(.none) td::before{color:var(--mute);font-size:.8rem}
td:nth-child(1)::before{content:'Last seen: '}td:nth-child(2)::before{content:'Type: '}
td:nth-child(3)::before{content:'Namespace: '}td:nth-child(4)::before{content:'Object: '}
td:nth-child(5)::before{content:'Reason: '}td:nth-child(6)::before{content:'Message: ';display:block}
td:nth-child(7)::before{content:'Count: '}}
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_text_and_attributes() {
        assert_eq!(
            Esc(r#"<script>alert("x") & 'y'</script>"#).to_string(),
            "&lt;script&gt;alert(&quot;x&quot;) &amp; &#39;y&#39;&lt;/script&gt;"
        );
        assert_eq!(Esc("plain é").to_string(), "plain é");
    }

    #[test]
    fn csp_hashes_are_base64_sha256() {
        assert_eq!(base64(b"hello world"), "aGVsbG8gd29ybGQ=");
        assert_eq!(base64(b"hi"), "aGk=");
        assert_eq!(
            csp_hash(""),
            "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        assert!(CSP.contains(&csp_hash(&SCRIPT_TEXT)));
    }

    #[test]
    fn ages_read_as_words() {
        let now: Timestamp = "2026-11-29T12:00:00Z".parse().unwrap();
        let ago = |s: i64| ago(now - jiff::SignedDuration::from_secs(s), now);
        assert_eq!(
            [ago(45), ago(600), ago(10_800), ago(259_200), ago(-5)],
            ["45 s ago", "10 min ago", "3 h ago", "3 d ago", "0 s ago"]
        );
    }

    #[test]
    fn empty_fields_are_no_filter_and_links_keep_filters_not_the_cursor() {
        let pairs = [
            ("namespace", "shop & co"),
            ("kind", ""),
            ("limit", "5"),
            ("cursor", "abc"),
            ("color", "blue"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let p = Params::new(pairs.to_vec());
        assert!(p.query(Timestamp::now()).is_err(), "the cursor is checked");
        assert_eq!(p.link(None), "?namespace=shop+%26+co&limit=5");
        assert_eq!(
            p.link(Some("c.1")),
            "?namespace=shop+%26+co&limit=5&cursor=c.1"
        );
        assert_eq!(Params::new(Vec::new()).link(None), "./");
        assert_eq!(
            object_link("shop", "Pod", "api-1"),
            "?namespace=shop&kind=Pod&name=api-1"
        );
    }
}
