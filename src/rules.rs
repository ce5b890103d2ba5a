//! The `--config` file: rules that drop events, choose which ones alert, and shape their alerts
//! (severity, labels, alertname), plus archive limits. Parsed and validated once at start; a
//! bad file is a start-up error that names the rule and what is wrong.
//!
//! ```yaml
//! rules:
//!   - match: ['namespace=~"prod-.*"', 'reason="OOMKilling"']
//!     severity: critical
//!   - match: ['namespace=~"payments(-.*)?"']
//!     labels: {team: payments}
//!   - match: ['reason="Pulled"']
//!     exclude: ['namespace="kube-system"']
//!     alert: false
//! archive:
//!   namespace_burst: 1000
//! ```

use std::{collections::BTreeMap, path::Path};

use regex::Regex;
use serde::Deserialize;

use crate::event::Event;

/// A config file that cannot be used; the message says where and why.
#[derive(Debug, thiserror::Error)]
pub enum InvalidRules {
    #[error("cannot read {path}: {source}")]
    ReadFailed {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    ParseFailed { path: String, message: String },
    #[error("{path}: rule {rule}: {message}")]
    RuleRejected {
        path: String,
        rule: usize,
        message: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    rules: Vec<RuleSpec>,
    #[serde(default)]
    archive: ArchiveSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    #[serde(default, rename = "match")]
    match_: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    alert: Option<bool>,
    #[serde(default)]
    drop: bool,
    severity: Option<String>,
    alertname: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Archive limits set in the file; flags take precedence.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ArchiveSpec {
    pub namespace_rate: Option<std::num::NonZeroU32>,
    pub namespace_burst: Option<std::num::NonZeroU32>,
    pub rate: Option<std::num::NonZeroU32>,
    pub burst: Option<std::num::NonZeroU32>,
}

/// The event field a matcher looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Namespace,
    Kind,
    Name,
    Reason,
    Type,
    Message,
    Source,
}

impl Field {
    fn of(self, e: &Event) -> &str {
        match self {
            Self::Namespace => &e.namespace,
            Self::Kind => &e.regarding.kind,
            Self::Name => &e.regarding.name,
            Self::Reason => &e.reason,
            Self::Type => e.type_.as_str(),
            Self::Message => &e.message,
            Self::Source => &e.source,
        }
    }
}

/// `field="value"`, `field!="value"`, `field=~"regex"` or `field!~"regex"`, as in
/// Alertmanager; regexes are anchored.
#[derive(Clone, Debug)]
struct Matcher {
    field: Field,
    negate: bool,
    test: Test,
}

#[derive(Clone, Debug)]
enum Test {
    Equal(String),
    Regex(Regex),
}

impl Matcher {
    fn parse(text: &str) -> Result<Self, String> {
        let op_at = text
            .find(['=', '!'])
            .ok_or_else(|| format!("matcher `{text}` has no operator (=, !=, =~, !~)"))?;
        let field = match text[..op_at].trim() {
            "namespace" => Field::Namespace,
            "kind" => Field::Kind,
            "name" => Field::Name,
            "reason" => Field::Reason,
            "type" => Field::Type,
            "message" => Field::Message,
            "source" => Field::Source,
            other => {
                return Err(format!(
                    "matcher `{text}`: unknown field `{other}` (namespace, kind, name, reason, type, message, source)"
                ));
            }
        };
        let rest = &text[op_at..];
        let (negate, regex, value) = if let Some(v) = rest.strip_prefix("!~") {
            (true, true, v)
        } else if let Some(v) = rest.strip_prefix("=~") {
            (false, true, v)
        } else if let Some(v) = rest.strip_prefix("!=") {
            (true, false, v)
        } else if let Some(v) = rest.strip_prefix('=') {
            (false, false, v)
        } else {
            return Err(format!("matcher `{text}` has no operator (=, !=, =~, !~)"));
        };
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        let test = if regex {
            Test::Regex(Regex::new(&format!("^(?:{value})$")).map_err(|e| {
                // regex explains over several lines; the last says what is wrong.
                let why = e.to_string();
                let why = why
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .trim_start_matches("error: ")
                    .to_owned();
                format!("matcher `{text}`: bad regex: {why}")
            })?)
        } else {
            Test::Equal(value.to_owned())
        };
        Ok(Self {
            field,
            negate,
            test,
        })
    }

    fn matches(&self, e: &Event) -> bool {
        let v = self.field.of(e);
        let hit = match &self.test {
            Test::Equal(want) => v == want,
            Test::Regex(re) => re.is_match(v),
        };
        hit != self.negate
    }
}

#[derive(Clone, Debug)]
struct Rule {
    matchers: Vec<Matcher>,
    exclude: Vec<Matcher>,
    alert: Option<bool>,
    drop: bool,
    severity: Option<String>,
    alertname: Option<String>,
    labels: BTreeMap<String, String>,
}

impl Rule {
    /// Applies when every `match` matcher holds and no `exclude` matcher does.
    fn applies(&self, e: &Event) -> bool {
        self.matchers.iter().all(|m| m.matches(e)) && !self.exclude.iter().any(|m| m.matches(e))
    }
}

/// What the rules say about one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Drop the event entirely: not counted, archived or alerted.
    pub drop: bool,
    pub alert: bool,
    pub alertname: Option<String>,
    pub severity: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// The validated rules. Every rule that applies to an event is applied, in file order; a later
/// rule's `alert`, `severity` and `alertname` override an earlier one's, labels merge.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    rules: Vec<Rule>,
    pub archive: ArchiveSpec,
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`: what Alertmanager accepts as a label name.
pub fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Labels the exporter sets itself; a rule may not replace them (but `severity` and
/// `alertname` have their own keys).
const RESERVED_LABELS: [&str; 7] = [
    "alertname",
    "alerttype",
    "namespace",
    "kind",
    "name",
    "reason",
    "severity",
];

impl Rules {
    pub fn load(path: &Path) -> Result<Self, InvalidRules> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| InvalidRules::ReadFailed {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text, &shown)
    }

    pub fn parse(text: &str, path: &str) -> Result<Self, InvalidRules> {
        let file: File = if text.trim().is_empty() {
            File::default()
        } else {
            serde_saphyr::from_str(text).map_err(|e| InvalidRules::ParseFailed {
                path: path.to_owned(),
                // The first line says what and where; the rest is a source snippet.
                message: e
                    .to_string()
                    .lines()
                    .next()
                    .unwrap_or("invalid YAML")
                    .to_owned(),
            })?
        };
        let mut rules = Vec::with_capacity(file.rules.len());
        for (i, spec) in file.rules.into_iter().enumerate() {
            let rejected = |message: String| InvalidRules::RuleRejected {
                path: path.to_owned(),
                rule: i + 1,
                message,
            };
            let parse = |list: &[String]| {
                list.iter()
                    .map(|m| Matcher::parse(m))
                    .collect::<Result<Vec<_>, _>>()
            };
            let matchers = parse(&spec.match_).map_err(rejected)?;
            let exclude = parse(&spec.exclude).map_err(rejected)?;
            for name in spec.labels.keys() {
                if !is_label_name(name) {
                    return Err(rejected(format!("`{name}` is not a valid label name")));
                }
                if RESERVED_LABELS.contains(&name.as_str()) {
                    return Err(rejected(format!(
                        "label `{name}` is set by the exporter (use `severity:` or `alertname:`)"
                    )));
                }
            }
            if spec.alertname.as_deref() == Some("") || spec.severity.as_deref() == Some("") {
                return Err(rejected("alertname and severity must not be empty".into()));
            }
            rules.push(Rule {
                matchers,
                exclude,
                alert: spec.alert,
                drop: spec.drop,
                severity: spec.severity,
                alertname: spec.alertname,
                labels: spec.labels,
            });
        }
        Ok(Self {
            rules,
            archive: file.archive,
        })
    }

    /// Decides what happens to `e`: by default Warnings alert and nothing is dropped.
    pub fn decide(&self, e: &Event) -> Decision {
        let mut d = Decision {
            drop: false,
            alert: e.is_warning(),
            alertname: None,
            severity: None,
            labels: BTreeMap::new(),
        };
        for rule in self.rules.iter().filter(|r| r.applies(e)) {
            d.drop |= rule.drop;
            if let Some(alert) = rule.alert {
                d.alert = alert;
            }
            if rule.severity.is_some() {
                d.severity.clone_from(&rule.severity);
            }
            if rule.alertname.is_some() {
                d.alertname.clone_from(&rule.alertname);
            }
            d.labels
                .extend(rule.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ObjectRef;

    fn ev(ns: &str, kind: &str, reason: &str, type_: &str) -> Event {
        Event {
            uid: "u".into(),
            namespace: ns.into(),
            name: "e".into(),
            resource_version: String::new(),
            regarding: ObjectRef {
                kind: kind.into(),
                name: "obj".into(),
                ..ObjectRef::default()
            },
            reason: reason.into(),
            type_: type_.parse().expect("tests use Normal or Warning"),
            message: "Memory cgroup out of memory".into(),
            count: 1,
            first_seen: jiff::Timestamp::UNIX_EPOCH,
            last_seen: jiff::Timestamp::UNIX_EPOCH,
            source: "kubelet".into(),
            host: String::new(),
            reporting_instance: String::new(),
            action: String::new(),
            workload: crate::event::Workload::default(),
        }
    }

    const EXAMPLE: &str = r#"
rules:
  - match: ['namespace=~"prod-.*"', 'reason="OOMKilling"']
    severity: critical
  - match: ['namespace=~"payments(-.*)?"']
    labels: {team: payments}
  - match: ['reason="Pulled"']
    exclude: ['namespace="kube-system"']
    alert: true
    alertname: ImagePulled
  - match: ['reason="FailedMount"', 'message=~".*configmap.*"']
    alert: false
  - match: ['namespace="noisy"']
    drop: true
archive:
  namespace_burst: 1000
"#;

    #[test]
    fn decisions() {
        let r = Rules::parse(EXAMPLE, "rules.yaml").unwrap();
        let d = r.decide(&ev("prod-eu", "Pod", "OOMKilling", "Warning"));
        assert!(d.alert && !d.drop);
        assert_eq!(d.severity.as_deref(), Some("critical"));
        assert!(
            r.decide(&ev("staging", "Pod", "OOMKilling", "Warning"))
                .severity
                .is_none()
        );
        let d = r.decide(&ev("payments-api", "Pod", "BackOff", "Warning"));
        assert_eq!(d.labels["team"], "payments");
        // A rule can send a Normal event, and an exclude keeps it from applying.
        let d = r.decide(&ev("shop", "Pod", "Pulled", "Normal"));
        assert!(d.alert);
        assert_eq!(d.alertname.as_deref(), Some("ImagePulled"));
        assert!(
            !r.decide(&ev("kube-system", "Pod", "Pulled", "Normal"))
                .alert
        );
        // Silencing, and Normal events stay quiet by default.
        let mut mount = ev("shop", "Pod", "FailedMount", "Warning");
        mount.message = "configmap \"x\" not found".into();
        assert!(!r.decide(&mount).alert);
        assert!(!r.decide(&ev("shop", "Pod", "Started", "Normal")).alert);
        assert!(r.decide(&ev("noisy", "Pod", "Started", "Normal")).drop);
        assert_eq!(
            r.archive.namespace_burst.map(std::num::NonZero::get),
            Some(1000)
        );
    }

    #[test]
    fn bad_files_name_the_rule_and_the_problem() {
        for (text, want) in [
            (
                "rules:\n  - match: ['reason=~\"(\"']\n",
                "rule 1: matcher `reason=~\"(\"`: bad regex",
            ),
            (
                "rules:\n  - match: ['colour=\"red\"']\n",
                "unknown field `colour`",
            ),
            ("rules:\n  - match: ['reason']\n", "has no operator"),
            (
                "rules:\n  - severity: critical\n    colour: red\n",
                "colour",
            ),
            (
                "rules:\n  - labels: {\"bad-name\": x}\n",
                "`bad-name` is not a valid label name",
            ),
            (
                "rules:\n  - labels: {namespace: x}\n",
                "set by the exporter",
            ),
            ("rules: [\n", "rules.yaml"),
            ("archive:\n  namespace_rate: 0\n", "rules.yaml"),
            ("archive:\n  speed: 3\n", "speed"),
        ] {
            let err = Rules::parse(text, "rules.yaml").unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
            assert!(err.starts_with("rules.yaml"), "{err}");
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn label_names() {
        assert!(is_label_name("team"));
        assert!(is_label_name("_x1"));
        assert!(!is_label_name("1x"));
        assert!(!is_label_name("a-b"));
        assert!(!is_label_name(""));
    }
}
