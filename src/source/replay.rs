//! The replay source: events from a file or stdin, in the shapes people already have
//! (`kubectl get events -o json` lists, `-w` and `--output-watch-events` streams, JSON lines,
//! both API versions). A malformed record is logged, counted and skipped.

use std::path::PathBuf;

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{
    SourceContext, SourceMsg,
    wire::{RawEvent, Shape, WatchItem},
};
use crate::event::Event;

/// Why a record was skipped.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("cut off or unbalanced JSON")]
    Incomplete,
    #[error("not valid UTF-8")]
    NotUtf8,
    #[error("not JSON: text outside a JSON value")]
    Stray,
    #[error("larger than {0} bytes")]
    TooLarge(usize),
    #[error("kind {0:?} is not an Event")]
    NotAnEvent(String),
    #[error("Event has neither metadata.uid nor metadata.name")]
    NoIdentity,
    #[error("not a valid {api} Event: {source}")]
    InvalidEvent {
        api: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

/// One decoded record.
#[derive(Debug)]
pub enum Record {
    /// A bare Event object, or an item of a List.
    Listed(Box<Event>),
    /// A watch event, as a watch stream would deliver it.
    Watch(Box<WatchItem>),
}

/// Reads the input to its end, then reports `Synced` and returns; the app keeps serving.
pub struct ReplaySource {
    input: Option<PathBuf>,
    ctx: SourceContext,
}

impl ReplaySource {
    /// `input` `None` reads stdin.
    pub fn new(input: Option<PathBuf>, ctx: SourceContext) -> Self {
        Self { input, ctx }
    }

    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let reader: Box<dyn AsyncRead + Send + Unpin> =
            match &self.input {
                None => Box::new(tokio::io::stdin()),
                Some(path) => Box::new(tokio::fs::File::open(path).await.map_err(|e| {
                    anyhow::anyhow!("cannot open replay file {}: {e}", path.display())
                })?),
            };
        let name = self
            .input
            .as_ref()
            .map_or_else(|| "stdin".to_owned(), |p| p.display().to_string());
        tokio::select! {
            res = self.read_all(reader) => {
                let (records, errors) = res?;
                info!(input = %name, records, errors, "Replay input read.");
                // The pipeline may already be gone on shutdown; nothing is lost then.
                let _ = self.ctx.tx.send(SourceMsg::Synced).await;
            }
            () = shutdown.cancelled() => {}
        }
        Ok(())
    }

    /// Reads in chunks: memory holds one chunk and one record, whatever the input's size or
    /// the length of its lines.
    async fn read_all(&self, mut reader: impl AsyncRead + Unpin) -> anyhow::Result<(u64, u64)> {
        let mut splitter = JsonSplitter::default();
        let mut chunk = vec![0u8; 64 * 1024];
        let mut pieces = Vec::new();
        let (mut records, mut errors) = (0u64, 0u64);
        loop {
            let n = reader.read(&mut chunk).await?;
            if n == 0 {
                pieces.extend(splitter.finish());
            } else {
                splitter.push(&chunk[..n], &mut pieces);
            }
            for piece in pieces.drain(..) {
                let decoded = match piece {
                    Piece::Value(text) => decode(&text, Timestamp::now()),
                    Piece::Item(text) => vec![decode_item(&text, Timestamp::now())],
                    Piece::Malformed(e) => vec![Err(e)],
                };
                for record in decoded {
                    match record {
                        Ok(record) => {
                            records += 1;
                            if !self.forward(record).await {
                                return Ok((records, errors));
                            }
                        }
                        Err(e) => {
                            errors += 1;
                            self.ctx.metrics.record_undecodable();
                            warn!(error = %e, "Skipped a malformed replay record.");
                        }
                    }
                }
            }
            if n == 0 {
                return Ok((records, errors));
            }
        }
    }

    /// Sends one record on; false once the pipeline is gone.
    async fn forward(&self, record: Record) -> bool {
        let msg = match record {
            Record::Listed(event) => SourceMsg::Applied(event),
            Record::Watch(item) => {
                self.ctx.metrics.watch_event(item.kind());
                match *item {
                    WatchItem::Added(event) | WatchItem::Modified(event) => {
                        SourceMsg::Applied(Box::new(event))
                    }
                    WatchItem::Deleted(event) => SourceMsg::Deleted { uid: event.uid },
                    // A recording has nothing to resume from or relist.
                    WatchItem::Bookmark { .. } | WatchItem::Error { .. } => return true,
                }
            }
        };
        self.ctx.tx.send(msg).await.is_ok()
    }
}

/// Decodes one JSON value: a List, a watch event or an Event object. A List yields a result per
/// item, so one bad item does not cost the others.
pub fn decode(text: &str, observed: Timestamp) -> Vec<Result<Record, DecodeError>> {
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return vec![Err(DecodeError::NotJson(e))],
    };
    decode_value(value, observed)
}

fn decode_value(mut value: Value, observed: Timestamp) -> Vec<Result<Record, DecodeError>> {
    if let Some(Value::Array(items)) = value.get_mut("items").map(Value::take) {
        return items
            .into_iter()
            .map(|item| decode_object(&item, observed).map(listed))
            .collect();
    }
    let watch_type = value
        .get("type")
        .and_then(Value::as_str)
        .filter(|_| value.get("object").is_some_and(Value::is_object))
        .and_then(|t| {
            ["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"]
                .into_iter()
                .find(|k| *k == t)
        });
    let Some(watch_type) = watch_type else {
        return vec![decode_object(&value, observed).map(listed)];
    };
    let object = value.get_mut("object").map(Value::take).unwrap_or_default();
    let item = match watch_type {
        "BOOKMARK" => Ok(WatchItem::Bookmark {
            resource_version: object
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        }),
        "ERROR" => Ok(WatchItem::Error {
            code: object.get("code").and_then(Value::as_i64).unwrap_or(0),
            message: object
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        }),
        kind => decode_object(&object, observed).map(|e| match kind {
            "ADDED" => WatchItem::Added(e),
            "MODIFIED" => WatchItem::Modified(e),
            _ => WatchItem::Deleted(e),
        }),
    };
    vec![item.map(|i| Record::Watch(Box::new(i)))]
}

fn listed(event: Event) -> Record {
    Record::Listed(Box::new(event))
}

/// An Event object in either API shape; the shape follows `apiVersion`, or the fields present.
fn decode_object(value: &Value, observed: Timestamp) -> Result<Event, DecodeError> {
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or("Event");
    if kind != "Event" {
        return Err(DecodeError::NotAnEvent(kind.to_owned()));
    }
    let has = |field: &str| {
        value
            .pointer(field)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    };
    if !has("/metadata/uid") && !has("/metadata/name") {
        return Err(DecodeError::NoIdentity);
    }
    let api_version = value.get("apiVersion").and_then(Value::as_str);
    let events_v1 = match api_version {
        Some(v) => v.starts_with("events.k8s.io/"),
        None => value.get("regarding").is_some() || value.get("note").is_some(),
    };
    let (shape, api) = if events_v1 {
        (Shape::EventsV1, "events.k8s.io/v1")
    } else {
        (Shape::CoreV1, "v1")
    };
    RawEvent::deserialize(value)
        .map(|e| e.into_event(shape, observed))
        .map_err(|source| DecodeError::InvalidEvent { api, source })
}

/// A top-level piece of input.
#[derive(Debug)]
pub enum Piece {
    /// A whole top-level value: an Event, a watch event, or a List's shell without its items.
    Value(String),
    /// One item of a top-level List's `items`, cut out as it streams past.
    Item(String),
    Malformed(DecodeError),
}

/// A record (a value, or a List item) larger than this is skipped as malformed: Kubernetes
/// stores no object over 1.5 MiB, and an Event is a few KB.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// Splits a byte stream into top-level JSON values: one per line (JSON lines) or spread over
/// many (pretty-printed, as kubectl writes). The items of a top-level List come out one by one
/// as they stream past, so a List of any size takes the memory of one item. Every piece is
/// bounded by [`MAX_RECORD_BYTES`]. It resynchronises after garbage: text outside a value is
/// malformed up to the end of its line; a line that starts with `{` or `[` in column 0 while a
/// value is open, or a string left open at a line's end, means the open value was cut.
///
/// It works on bytes: JSON's structural characters are ASCII, and no byte of a multi-byte
/// UTF-8 character is, so input can be fed in chunks cut anywhere.
// A byte scanner's state: each flag is an independent bit of where it stands.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug)]
pub struct JsonSplitter {
    /// The open top-level value, without the items of a List.
    shell: Vec<u8>,
    /// The open List item.
    item: Vec<u8>,
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// The last string read at depth 1 (a key or a value), up to 16 bytes.
    key: Vec<u8>,
    /// Inside the `items` array of a top-level object, at this depth.
    items_depth: Option<usize>,
    in_item: bool,
    /// The open value (or item) outgrew the cap: scanned to its end, not kept.
    shell_too_large: bool,
    item_too_large: bool,
    /// Skipping garbage to the end of its line.
    skip_line: bool,
    line_start: bool,
    max: usize,
}

impl Default for JsonSplitter {
    fn default() -> Self {
        Self::with_max(MAX_RECORD_BYTES)
    }
}

impl JsonSplitter {
    pub fn with_max(max: usize) -> Self {
        Self {
            shell: Vec::new(),
            item: Vec::new(),
            depth: 0,
            in_string: false,
            escaped: false,
            key: Vec::new(),
            items_depth: None,
            in_item: false,
            shell_too_large: false,
            item_too_large: false,
            skip_line: false,
            line_start: true,
            max,
        }
    }

    /// Splits the next bytes of input; complete pieces go to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<Piece>) {
        for &b in bytes {
            self.byte(b, out);
        }
    }

    fn byte(&mut self, b: u8, out: &mut Vec<Piece>) {
        if b == b'\n' {
            if self.skip_line {
                self.skip_line = false;
            } else if self.depth > 0 && self.in_string {
                // JSON strings hold no raw newline: the value was cut.
                self.reset();
                out.push(Piece::Malformed(DecodeError::Incomplete));
            } else if self.depth > 0 {
                self.keep(b);
            }
            self.line_start = true;
            return;
        }
        if self.skip_line {
            return;
        }
        let column_0 = std::mem::replace(&mut self.line_start, false);
        if self.depth > 0 && column_0 && (b == b'{' || b == b'[') {
            self.reset();
            out.push(Piece::Malformed(DecodeError::Incomplete));
        }
        if self.depth == 0 {
            if b.is_ascii_whitespace() {
                return;
            }
            if b != b'{' && b != b'[' {
                self.skip_line = true;
                out.push(Piece::Malformed(DecodeError::Stray));
                return;
            }
        }
        if self.in_string {
            self.keep(b);
            if self.escaped {
                self.escaped = false;
            } else if b == b'\\' {
                self.escaped = true;
            } else if b == b'"' {
                self.in_string = false;
            } else if self.depth == 1 && self.key.len() < 16 {
                self.key.push(b);
            }
            return;
        }
        match b {
            b'"' => {
                self.keep(b);
                self.in_string = true;
                if self.depth == 1 {
                    self.key.clear();
                }
            }
            b'{' | b'[' => {
                if self.items_depth == Some(self.depth) && !self.in_item {
                    self.in_item = true;
                    self.item.clear();
                    self.item_too_large = false;
                }
                self.keep(b);
                self.depth += 1;
                if b == b'['
                    && self.depth == 2
                    && self.key == b"items"
                    && self.shell.first() == Some(&b'{')
                {
                    self.items_depth = Some(2);
                }
            }
            b'}' | b']' => {
                self.keep(b);
                self.depth -= 1;
                if self.in_item && self.items_depth == Some(self.depth) {
                    self.in_item = false;
                    out.push(if self.item_too_large {
                        Piece::Malformed(DecodeError::TooLarge(self.max))
                    } else {
                        piece(Piece::Item, std::mem::take(&mut self.item))
                    });
                } else if self.items_depth == Some(self.depth + 1) && !self.in_item {
                    self.items_depth = None;
                }
                if self.depth == 0 {
                    out.push(if self.shell_too_large {
                        Piece::Malformed(DecodeError::TooLarge(self.max))
                    } else {
                        piece(Piece::Value, std::mem::take(&mut self.shell))
                    });
                    self.reset();
                }
            }
            _ => self.keep(b),
        }
    }

    /// Keeps `b` in the open item, or in the shell unless it lies between a List's items.
    fn keep(&mut self, b: u8) {
        if self.in_item {
            if self.item.len() < self.max {
                self.item.push(b);
            } else {
                self.item_too_large = true;
            }
        } else if self.items_depth == Some(self.depth) && b != b']' {
            // A comma or whitespace between items.
        } else if self.shell.len() < self.max {
            self.shell.push(b);
        } else {
            self.shell_too_large = true;
        }
    }

    /// The end of input: an open value was cut off.
    pub fn finish(&mut self) -> Option<Piece> {
        let open = self.depth > 0;
        self.reset();
        self.skip_line = false;
        self.line_start = true;
        open.then_some(Piece::Malformed(DecodeError::Incomplete))
    }

    fn reset(&mut self) {
        self.shell.clear();
        self.item.clear();
        self.depth = 0;
        self.in_string = false;
        self.escaped = false;
        self.key.clear();
        self.items_depth = None;
        self.in_item = false;
        self.shell_too_large = false;
        self.item_too_large = false;
    }
}

/// `bytes` as a piece of text, or malformed if it is not UTF-8.
fn piece(make: fn(String) -> Piece, bytes: Vec<u8>) -> Piece {
    match String::from_utf8(bytes) {
        Ok(text) => make(text),
        Err(_) => Piece::Malformed(DecodeError::NotUtf8),
    }
}

/// Decodes one item of a List.
pub fn decode_item(text: &str, observed: Timestamp) -> Result<Record, DecodeError> {
    let value: Value = serde_json::from_str(text).map_err(DecodeError::NotJson)?;
    decode_object(&value, observed).map(listed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(input: &str) -> (Vec<String>, usize) {
        let mut s = JsonSplitter::default();
        let mut out = Vec::new();
        s.push(input.as_bytes(), &mut out);
        out.extend(s.finish());
        let mut values = Vec::new();
        let mut bad = 0;
        for p in out {
            match p {
                Piece::Value(v) | Piece::Item(v) => values.push(v),
                Piece::Malformed(_) => bad += 1,
            }
        }
        (values, bad)
    }

    #[test]
    fn splits_json_lines_and_pretty_values() {
        let (v, bad) =
            split("{\"a\":1}\n{\n  \"b\": {\"c\": \"}{\"}\n}\n{\"d\":[1,2]} {\"e\":\"\\\"\"}\n");
        assert_eq!(bad, 0);
        assert_eq!(v.len(), 4);
        for text in &v {
            serde_json::from_str::<Value>(text).unwrap();
        }
    }

    #[test]
    fn resynchronises_after_garbage() {
        let input = "garbage\n{\"a\":1}\n{\"cut\": \"off\n{\n  \"x\": {\n{\"b\":2}\n}\n{\"tail\":";
        let (v, bad) = split(input);
        assert_eq!(v, ["{\"a\":1}", "{\"b\":2}"]);
        // garbage, the cut string, the open pretty value, the stray `}`, the cut tail
        assert_eq!(bad, 5);
    }

    fn applied(r: &Result<Record, DecodeError>) -> &Event {
        match r {
            Ok(Record::Listed(event)) => event,
            Ok(Record::Watch(item)) => match &**item {
                WatchItem::Added(event) | WatchItem::Modified(event) => event,
                other => panic!("not applied: {other:?}"),
            },
            other => panic!("not applied: {other:?}"),
        }
    }

    #[test]
    fn decodes_all_shapes() {
        let now = Timestamp::now();
        let core = r#"{"apiVersion":"v1","kind":"Event","metadata":{"name":"a","namespace":"n","uid":"u1"},"involvedObject":{"kind":"Pod","name":"p"},"reason":"BackOff","count":3}"#;
        let ev1 = r#"{"apiVersion":"events.k8s.io/v1","kind":"Event","metadata":{"name":"b","namespace":"n","uid":"u2"},"regarding":{"kind":"Pod","name":"p"},"reason":"Pulled","series":{"count":2,"lastObservedTime":"2026-11-29T10:00:00.000000Z"}}"#;
        assert_eq!(applied(&decode(core, now)[0]).count, 3);
        assert_eq!(applied(&decode(ev1, now)[0]).count, 2);

        let list = format!(
            r#"{{"apiVersion":"v1","kind":"List","items":[{core},{ev1},{{"kind":"Event"}}]}}"#
        );
        let items = decode(&list, now);
        assert_eq!(items.len(), 3);
        assert_eq!(applied(&items[1]).uid, "u2");
        assert!(matches!(items[2], Err(DecodeError::NoIdentity)));
        let wrong_type =
            r#"{"kind":"Event","metadata":{"name":"x"},"involvedObject":{},"count":"many"}"#;
        assert!(matches!(
            decode(wrong_type, now)[0],
            Err(DecodeError::InvalidEvent { .. })
        ));

        let watch = format!(r#"{{"type":"MODIFIED","object":{core}}}"#);
        assert_eq!(applied(&decode(&watch, now)[0]).uid, "u1");
        let deleted = format!(r#"{{"type":"DELETED","object":{ev1}}}"#);
        assert!(
            matches!(&decode(&deleted, now)[0], Ok(Record::Watch(w)) if matches!(&**w, WatchItem::Deleted(e) if e.uid == "u2"))
        );
        let bookmark =
            r#"{"type":"BOOKMARK","object":{"kind":"Event","metadata":{"resourceVersion":"9"}}}"#;
        assert!(matches!(
            &decode(bookmark, now)[0],
            Ok(Record::Watch(w)) if matches!(&**w, WatchItem::Bookmark { resource_version } if resource_version == "9")
        ));

        // kubectl -w without --output-watch-events prints bare objects, whose own `type` is
        // the event type: they must not be mistaken for watch events.
        let bare = r#"{"kind":"Event","type":"Warning","metadata":{"name":"c","namespace":"n"},"involvedObject":{}}"#;
        assert_eq!(
            applied(&decode(bare, now)[0]).type_,
            crate::event::EventType::Warning
        );
        assert!(matches!(
            decode(r#"{"kind":"Pod"}"#, now)[0],
            Err(DecodeError::NotAnEvent(_))
        ));
    }

    /// A List's items come out one by one, whatever the chunking of the input; the List's
    /// shell comes out without them and decodes to nothing.
    #[test]
    fn a_list_streams_item_by_item_in_any_chunking() {
        let item = |i: usize| {
            format!(
                "    {{\n      \"kind\": \"Event\",\n      \"metadata\": {{\"name\": \"e{i}\", \"uid\": \"u{i}\"}},\n      \"message\": \"a ] and a }} in \\\"text\\\"\",\n      \"involvedObject\": {{\"kind\": \"Pod\"}}\n    }}"
            )
        };
        let items: Vec<String> = (0..5).map(item).collect();
        let list = format!(
            "{{\n  \"apiVersion\": \"v1\",\n  \"items\": [\n{}\n  ],\n  \"kind\": \"List\",\n  \"metadata\": {{\"resourceVersion\": \"\"}}\n}}\n",
            items.join(",\n")
        );
        for chunk in [1, 7, 64, list.len()] {
            let mut s = JsonSplitter::default();
            let mut out = Vec::new();
            for part in list.as_bytes().chunks(chunk) {
                s.push(part, &mut out);
            }
            out.extend(s.finish());
            let mut uids = Vec::new();
            let mut shells = 0;
            for piece in out {
                match piece {
                    Piece::Item(text) => uids.push(
                        applied(&Ok(decode_item(&text, Timestamp::now()).unwrap()))
                            .uid
                            .clone(),
                    ),
                    Piece::Value(text) => {
                        shells += 1;
                        assert!(decode(&text, Timestamp::now()).is_empty(), "{text}");
                    }
                    Piece::Malformed(e) => panic!("chunks of {chunk}: {e}"),
                }
            }
            assert_eq!(uids, ["u0", "u1", "u2", "u3", "u4"], "chunks of {chunk}");
            assert_eq!(shells, 1);
        }
    }

    /// A record over the cap is skipped as malformed, never held whole; the next one is read.
    #[test]
    fn an_oversized_record_is_skipped_and_the_next_is_read() {
        let mut s = JsonSplitter::with_max(64);
        let mut out = Vec::new();
        let big = format!("{{\"message\": \"{}\"}}\n", "x".repeat(10_000));
        s.push(big.as_bytes(), &mut out);
        assert!(s.shell.len() <= 64);
        s.push(b"{\"a\":1}\n", &mut out);
        let list = format!(
            "{{\"items\": [{{\"m\": \"{}\"}}, {{\"b\":2}}]}}\n",
            "y".repeat(1000)
        );
        s.push(list.as_bytes(), &mut out);
        out.extend(s.finish());
        let shown: Vec<String> = out
            .iter()
            .map(|p| match p {
                Piece::Value(v) => format!("value {v}"),
                Piece::Item(v) => format!("item {v}"),
                Piece::Malformed(e) => format!("bad {e}"),
            })
            .collect();
        assert_eq!(
            shown,
            [
                "bad larger than 64 bytes",
                "value {\"a\":1}",
                "bad larger than 64 bytes",
                "item {\"b\":2}",
                "value {\"items\": []}",
            ]
        );
    }
}
