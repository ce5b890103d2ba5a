//! The replay source: events from a file or stdin, in the shapes people already have
//! (`kubectl get events -o json` lists, `-w` and `--output-watch-events` streams, JSON lines,
//! both API versions). A malformed record is logged, counted and skipped.

use std::path::PathBuf;

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};
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
        let reader: Box<dyn AsyncBufRead + Send + Unpin> = match &self.input {
            None => Box::new(BufReader::new(tokio::io::stdin())),
            Some(path) => Box::new(BufReader::new(tokio::fs::File::open(path).await.map_err(
                |e| anyhow::anyhow!("cannot open replay file {}: {e}", path.display()),
            )?)),
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

    async fn read_all(&self, mut reader: impl AsyncBufRead + Unpin) -> anyhow::Result<(u64, u64)> {
        let mut splitter = JsonSplitter::default();
        let mut line = Vec::new();
        let mut pieces = Vec::new();
        let (mut records, mut errors) = (0u64, 0u64);
        loop {
            line.clear();
            let eof = reader.read_until(b'\n', &mut line).await? == 0;
            if eof {
                pieces.extend(splitter.finish());
            } else {
                match std::str::from_utf8(&line) {
                    Ok(text) => {
                        splitter.push_line(text.trim_end_matches(['\n', '\r']), &mut pieces);
                    }
                    Err(_) => pieces.push(Piece::Malformed(DecodeError::NotUtf8)),
                }
            }
            for piece in pieces.drain(..) {
                let decoded = match piece {
                    Piece::Value(text) => decode(&text, Timestamp::now()),
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
            if eof {
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
    Value(String),
    Malformed(DecodeError),
}

/// Splits a stream of lines into top-level JSON values: one per line (JSON lines) or spread over
/// many (pretty-printed, as kubectl writes). It resynchronises after garbage: text outside a
/// value is malformed up to the end of its line; a line that starts with `{` or `[` in column 0
/// while a value is open, or a string left open at a line's end, means the open value was cut.
#[derive(Debug, Default)]
pub struct JsonSplitter {
    buf: String,
    depth: usize,
    in_string: bool,
    escaped: bool,
}

impl JsonSplitter {
    pub fn push_line(&mut self, line: &str, out: &mut Vec<Piece>) {
        if self.depth > 0 && (line.starts_with('{') || line.starts_with('[')) {
            self.reset();
            out.push(Piece::Malformed(DecodeError::Incomplete));
        }
        let mut start = 0;
        for (i, c) in line.char_indices() {
            if self.depth == 0 {
                if c.is_whitespace() {
                    continue;
                }
                if c != '{' && c != '[' {
                    let e = serde_json::from_str::<Value>(line[i..].trim()).err();
                    out.push(Piece::Malformed(
                        e.map_or(DecodeError::Incomplete, DecodeError::NotJson),
                    ));
                    return;
                }
                start = i;
            }
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if c == '\\' {
                    self.escaped = true;
                } else if c == '"' {
                    self.in_string = false;
                }
                continue;
            }
            match c {
                '"' => self.in_string = true,
                '{' | '[' => self.depth += 1,
                '}' | ']' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        self.buf.push_str(&line[start..=i]);
                        out.push(Piece::Value(std::mem::take(&mut self.buf)));
                        start = i + 1;
                    }
                }
                _ => {}
            }
        }
        if self.in_string {
            self.reset();
            out.push(Piece::Malformed(DecodeError::Incomplete));
        } else if self.depth > 0 {
            self.buf.push_str(&line[start..]);
            self.buf.push('\n');
        }
    }

    /// The end of input: an open value was cut off.
    pub fn finish(&mut self) -> Option<Piece> {
        let open = self.depth > 0;
        self.reset();
        open.then_some(Piece::Malformed(DecodeError::Incomplete))
    }

    fn reset(&mut self) {
        self.buf.clear();
        self.depth = 0;
        self.in_string = false;
        self.escaped = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(input: &str) -> (Vec<String>, usize) {
        let mut s = JsonSplitter::default();
        let mut out = Vec::new();
        for line in input.lines() {
            s.push_line(line, &mut out);
        }
        out.extend(s.finish());
        let mut values = Vec::new();
        let mut bad = 0;
        for p in out {
            match p {
                Piece::Value(v) => values.push(v),
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
}
