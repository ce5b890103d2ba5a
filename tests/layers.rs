//! The module layering, stated once and checked against the source: each module of `src/`
//! imports only from the layers below it, so the import graph has no cycles and reads like the
//! diagram in `src/lib.rs`. A new top-level module must be given its place here.

use std::{collections::BTreeSet, path::Path};

/// Bottom first. A module may import (`crate::…`) only modules listed before it.
const LAYERS: [&str; 13] = [
    "util", "event", "health", "metrics", "rules", "source", "archive", "ship", "alerting",
    "pipeline", "http", "config", "app",
];

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|m| *m == module)
}

/// The top-level modules named after `crate::` in `text`: `crate::a::b` gives `a`, and
/// `crate::{a::x, b}` gives `a` and `b`.
fn crate_imports(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        // `kube_event_exporter::crate::` cannot occur; `my_crate::` is another path.
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0usize;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 && c == ',' {
                    found.extend(head(&item));
                    item.clear();
                } else {
                    item.push(c);
                }
            }
            found.extend(head(&item));
        } else {
            found.extend(head(rest));
        }
    }
    found
}

/// The first identifier of a path.
fn head(path: &str) -> Option<String> {
    let ident: String = path
        .trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!ident.is_empty() && ident != "self").then_some(ident)
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Which imports of `module` (whose source is `text`) break the layering.
fn violations(module: &str, text: &str) -> Vec<String> {
    let Some(own) = rank(module) else {
        return vec![format!("module `{module}` has no layer in tests/layers.rs")];
    };
    crate_imports(text)
        .into_iter()
        .filter(|imported| imported != module)
        .filter_map(|imported| match rank(&imported) {
            Some(r) if r < own => None,
            Some(_) => Some(format!(
                "`{module}` imports `{imported}`, which is not below it"
            )),
            None => Some(format!(
                "`{module}` imports `{imported}`, which has no layer"
            )),
        })
        .collect()
}

#[test]
fn every_module_imports_only_from_the_layers_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for file in files {
        let relative = file.strip_prefix(&src).expect("under src");
        let first = relative
            .components()
            .next()
            .expect("a path")
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        // lib.rs only declares the modules; main.rs is the binary over all of them.
        if first == "lib" || first == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read");
        seen.insert(first.clone());
        problems.extend(
            violations(&first, &text)
                .into_iter()
                .map(|p| format!("{}: {p}", relative.display())),
        );
    }
    assert!(
        problems.is_empty(),
        "layering broken:\n{}",
        problems.join("\n")
    );
    let declared: BTreeSet<String> = LAYERS.iter().map(|m| (*m).to_owned()).collect();
    assert_eq!(seen, declared, "every layer is a module of src/ and back");
}

#[test]
fn the_check_sees_upward_imports_groups_and_cycles() {
    assert_eq!(
        crate_imports(
            "use crate::{\n    archive::{a, b},\n    metrics::Metrics,\n};\nfn f() { crate::event::micros(t); my_crate::x(); }"
        ),
        ["archive", "event", "metrics"].map(String::from).into()
    );
    // An upward import (the pipeline from the archive) breaks it…
    assert_eq!(
        violations("archive", "use crate::pipeline::ledger::uid_key;"),
        ["`archive` imports `pipeline`, which is not below it"]
    );
    // …and so does either half of a cycle between modules of one layer order.
    assert!(
        !violations(
            "source",
            "use crate::source::x; use crate::config::EventsApi;"
        )
        .is_empty()
    );
    assert!(violations("config", "use crate::source::kube::EventsApi;").is_empty());
    assert!(!violations("newstage", "").is_empty(), "an unplaced module");
}
