//! The command line as a user meets it: bad values exit 2 naming the flag, `--help` documents
//! every flag the parser defines with its environment variable and default, and the exposition
//! is lint-clean.

use std::{
    collections::{BTreeMap, BTreeSet},
    process::Command,
};

use clap::CommandFactory;
use kube_event_exporter::config::Args;

use crate::support::Exporter;

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(Exporter::binary())
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run exporter");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_values_exit_2_naming_the_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (args, env, flag) in [
        (&["--listen", "nowhere"][..], &[][..], "--listen"),
        (&["--events-api", "v2"], &[], "--events-api"),
        (&["--namespace", "Not_A_Namespace"], &[], "--namespace"),
        (&["--replay", "/no/such/file"], &[], "--replay"),
        (
            &["--kubeconfig", "/no/such/kubeconfig"],
            &[],
            "--kubeconfig",
        ),
        (&["--log-format", "xml"], &[], "--log-format"),
        (
            &["--health-failure-threshold", "soon"],
            &[],
            "--health-failure-threshold",
        ),
        (&["--no-such-flag"], &[], "--no-such-flag"),
        (&[], &[("KEE_LISTEN", "bad")], "--listen"),
        (&[], &[("KEE_EVENTS_API", "v9")], "--events-api"),
        (&["--history-listen", "nowhere"], &[], "--history-listen"),
        (&[], &[("KEE_HISTORY_LISTEN", "9103")], "--history-listen"),
        // The history's own address must not be one --listen binds too.
        (
            &[
                "--listen",
                "127.0.0.1:9102",
                "--history-listen",
                "127.0.0.1:9102",
            ],
            &[],
            "--history-listen",
        ),
        (
            &["--history-listen", "127.0.0.1:9102"],
            &[],
            "--history-listen",
        ),
    ] {
        let (code, stderr) = run(args, env);
        assert_eq!(code, 2, "{args:?} {env:?}: {stderr}");
        let first = stderr.lines().next().unwrap_or_default();
        assert!(
            first.contains(flag),
            "{args:?} {env:?}: first line {first:?} does not name {flag}"
        );
    }
    // A rules file with a bad regex, and one with an unknown key: exit 2 naming the rule.
    for (text, want) in [
        (
            "rules:\n  - match: ['reason=~\"(\"']\n",
            "rule 1: matcher `reason=~\"(\"`: bad regex",
        ),
        (
            "rules:\n  - severity: critical\n    colour: red\n",
            "colour",
        ),
    ] {
        let rules = dir.path().join("rules.yaml");
        std::fs::write(&rules, text).expect("write");
        let (code, stderr) = run(
            &["--config", rules.to_str().expect("utf-8"), "--replay", "-"],
            &[],
        );
        assert_eq!(code, 2, "{stderr}");
        let first = stderr.lines().next().unwrap_or_default();
        assert!(
            first.contains("--config") && first.contains(want),
            "{first}"
        );
    }
    // A kubeconfig that exists but is not one.
    let bogus = dir.path().join("kubeconfig");
    std::fs::write(&bogus, "this: [is not a kubeconfig").expect("write");
    let (code, stderr) = run(
        &[
            "--kubeconfig",
            bogus.to_str().expect("utf-8"),
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr
            .lines()
            .next()
            .unwrap_or_default()
            .contains("--kubeconfig"),
        "{stderr}"
    );
}

#[test]
fn help_documents_every_flag_with_its_env_and_default() {
    let out = Command::new(Exporter::binary())
        .arg("--help")
        .output()
        .expect("run");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    // Each option's entry in --help: its first line (`--flag <VALUE>`, or `-h, --help`), then
    // the description, indented further.
    let mut entries: BTreeMap<&str, String> = BTreeMap::new();
    let mut current = None;
    for line in help.lines() {
        let text = line.trim_start();
        let indent = line.len() - text.len();
        if text.starts_with('-') && indent < 10 {
            current = text.split_whitespace().find(|w| w.starts_with("--"));
        }
        if let Some(flag) = current {
            let entry = entries.entry(flag).or_default();
            entry.push(' ');
            entry.push_str(text);
        }
    }
    // Every argument the parser defines, not a list that can fall behind it.
    let mut defined = BTreeSet::from(["--help".to_owned(), "--version".to_owned()]);
    for arg in Args::command().get_arguments() {
        let id = arg.get_id();
        let long = arg
            .get_long()
            .unwrap_or_else(|| panic!("argument {id} has no long flag"));
        let env = arg
            .get_env()
            .unwrap_or_else(|| panic!("--{long} reads no environment variable"))
            .to_string_lossy();
        assert_eq!(
            env,
            format!("KEE_{}", long.to_uppercase().replace('-', "_"))
        );
        let entry = entries
            .get(format!("--{long}").as_str())
            .unwrap_or_else(|| panic!("--{long} missing from --help:\n{help}"));
        // A secret's value (a URL with credentials) is hidden: `[env: NAME]`.
        assert!(
            entry.contains(&format!("[env: {env}=")) || entry.contains(&format!("[env: {env}]")),
            "--{long}'s variable {env} missing from its --help entry: {entry}"
        );
        for default in arg.get_default_values() {
            let default = default.to_string_lossy();
            assert!(
                entry.contains(&format!("[default: {default}]")),
                "--{long}'s default {default} missing from its --help entry: {entry}"
            );
        }
        defined.insert(format!("--{long}"));
    }
    assert_eq!(
        entries.keys().copied().collect::<BTreeSet<_>>(),
        defined.iter().map(String::as_str).collect(),
        "--help documents exactly the parser's flags"
    );
    // And the names users, the README and the deployment rely on stay as they are.
    for (flag, env) in [
        ("--listen", "KEE_LISTEN"),
        ("--history-listen", "KEE_HISTORY_LISTEN"),
        ("--kubeconfig", "KEE_KUBECONFIG"),
        ("--context", "KEE_CONTEXT"),
        ("--events-api", "KEE_EVENTS_API"),
        ("--namespace", "KEE_NAMESPACE"),
        ("--replay", "KEE_REPLAY"),
        ("--log-format", "KEE_LOG_FORMAT"),
        ("--alertmanager-url", "KEE_ALERTMANAGER_URL"),
        ("--alert-resolve-after", "KEE_ALERT_RESOLVE_AFTER"),
        ("--alert-label", "KEE_ALERT_LABEL"),
        ("--external-url", "KEE_EXTERNAL_URL"),
        ("--archive-path", "KEE_ARCHIVE_PATH"),
        ("--archive-retention", "KEE_ARCHIVE_RETENTION"),
        ("--config", "KEE_CONFIG"),
    ] {
        assert!(
            help.contains(flag) && help.contains(&format!("env: {env}")),
            "{flag} / {env} missing from --help:\n{help}"
        );
    }
    assert!(help.contains("[default: 0.0.0.0:9102]"));
    assert!(help.contains("[default: events.k8s.io/v1]"));
    assert!(help.contains("[default: 15m]") && help.contains("[default: 7d]"));
    assert!(help.contains("[default: ./kube-event-exporter.redb]"));
}

/// promtool (2.42) lints the classic text format; the exporter serves it to clients that ask.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exposition_is_openmetrics_by_default_and_promtool_clean() {
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/events.jsonl");
    let exporter = Exporter::start(&["--replay", sample.to_str().expect("utf-8")]).await;
    exporter.wait_ready().await;
    let client = crate::support::http();
    let om = client
        .get(exporter.url("/metrics"))
        .send()
        .await
        .expect("get");
    assert!(
        om.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("application/openmetrics-text")
    );
    assert!(om.text().await.expect("body").ends_with("# EOF\n"));

    let classic = client
        .get(exporter.url("/metrics"))
        .header("accept", "text/plain")
        .send()
        .await
        .expect("get");
    assert!(
        classic.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/plain; version=0.0.4")
    );
    let text = classic.text().await.expect("body");
    assert!(text.contains("kube_events_total{"));
    let lint = promtool_check_metrics(&text);
    assert_eq!(lint, (0, String::new()), "promtool check metrics");

    // The lint can fail: a counter without help and with a bad name is reported.
    let (code, out) = promtool_check_metrics("# TYPE bad_counter counter\nbad_counter 1\n");
    assert_ne!(
        (code, out.as_str()),
        (0, ""),
        "promtool must reject a lint-dirty exposition"
    );
}

fn promtool_check_metrics(text: &str) -> (i32, String) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (apt-get install prometheus)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), report.trim().to_owned())
}
