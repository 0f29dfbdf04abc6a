//! The operator tools of `mixs`, as processes: `mixs validate` on the
//! shipped config and on broken ones, `mixs expr` on attributes from flags
//! and from JSON.

mod examples_support;

use std::path::Path;
use std::process::Output;

use examples_support::{run, shipped_config, stderr, stdout};

fn mixs(args: &[&str]) -> Output {
    run("mixs", args)
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// How many documents, handlers, instances and rules `files` hold, counted
/// from the text (each document starts with `apiVersion:`) rather than by
/// the loader under test.
fn count_objects(files: &[std::path::PathBuf]) -> [usize; 4] {
    let mut n = [0; 4];
    for f in files {
        let text = std::fs::read_to_string(f).unwrap();
        for line in text.lines() {
            match line.trim_end() {
                l if l.starts_with("apiVersion:") => n[0] += 1,
                "kind: handler" => n[1] += 1,
                "kind: instance" => n[2] += 1,
                "kind: rule" => n[3] += 1,
                _ => {}
            }
        }
    }
    n
}

#[test]
fn validate_accepts_the_shipped_config() {
    let dir = shipped_config();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "policy, quota and telemetry: {files:?}");
    let [docs, handlers, instances, rules] = count_objects(&files);
    let expected = format!(
        "ok: {docs} documents, {handlers} handlers, {instances} instances, {rules} rules\n"
    );

    // The directory, and the same files named one by one.
    let out = mixs(&["validate", path_str(&dir)]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout(&out), expected, "no warnings either");
    let mut args = vec!["validate"];
    args.extend(files.iter().map(|f| path_str(f)));
    let out = mixs(&args);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout(&out), expected);

    // One file alone is a smaller configuration, still valid.
    let policy = dir.join("policy.yaml");
    let [docs, handlers, instances, rules] = count_objects(std::slice::from_ref(&policy));
    let out = mixs(&["validate", path_str(&policy)]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        stdout(&out),
        format!(
            "ok: {docs} documents, {handlers} handlers, {instances} instances, {rules} rules\n"
        )
    );
}

const API: &str = "apiVersion: config.istio.io/v1alpha2";

/// Three files, each with one mistake of a different kind.
fn broken_config() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
    // A rule match comparing an INT64 with a string: line 19 holds it.
    write(
        "a-expression.yaml",
        format!(
            "{API}
kind: handler
metadata: {{name: deny-all, namespace: istio-system}}
spec:
  compiledAdapter: denier
  params:
    status: {{code: 7, message: no}}
---
{API}
kind: instance
metadata: {{name: nothing, namespace: istio-system}}
spec:
  compiledTemplate: checknothing
---
{API}
kind: rule
metadata: {{name: bad-match, namespace: istio-system}}
spec:
  match: request.size == \"big\"
  actions:
  - handler: deny-all
    instances: [nothing]
"
        ),
    );
    // A rule naming a handler defined nowhere: line 12.
    write(
        "b-handler.yaml",
        format!(
            "{API}
kind: instance
metadata: {{name: also-nothing, namespace: istio-system}}
spec:
  compiledTemplate: checknothing
---
{API}
kind: rule
metadata: {{name: dangling, namespace: istio-system}}
spec:
  actions:
  - handler: no-such-handler
    instances: [also-nothing]
"
        ),
    );
    // A memquota handler whose maxAmount is not a number: line 9.
    write(
        "c-params.yaml",
        format!(
            "{API}
kind: handler
metadata: {{name: limits, namespace: istio-system}}
spec:
  compiledAdapter: memquota
  params:
    quotas:
    - name: requestquota.instance.istio-system
      maxAmount: lots
      validDuration: 1s
"
        ),
    );
    dir
}

/// What `mixs validate` prints for each file of [`broken_config`].
fn broken_config_problems(root: &str) -> [String; 3] {
    [
        format!(
            "{root}/a-expression.yaml:19: rule 'bad-match.rule.istio-system' field match: \
             1:17: operator '==' argument 2: expected INT64 (the type of argument 1), got STRING"
        ),
        format!(
            "{root}/b-handler.yaml:12: rule 'dangling.rule.istio-system' field actions[0].handler: \
             handler 'no-such-handler' not found (looked for no-such-handler.handler.istio-system)"
        ),
        format!(
            "{root}/c-params.yaml:9: handler 'limits.handler.istio-system' field \
             params.quotas[0].maxAmount: expected an integer, got \"lots\""
        ),
    ]
}

fn assert_lists(text: &str, problems: &[String]) {
    let n = problems.len();
    let header = format!(
        "invalid configuration ({n} {}):\n",
        if n == 1 { "problem" } else { "problems" }
    );
    assert!(text.starts_with(&header), "{text}");
    for line in problems {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
}

#[test]
fn validate_locates_each_problem() {
    let dir = broken_config();
    let problems = broken_config_problems(path_str(dir.path()));
    for (file, line) in ["a-expression.yaml", "b-handler.yaml", "c-params.yaml"]
        .iter()
        .zip(&problems)
    {
        let path = dir.path().join(file);
        let out = mixs(&["validate", path_str(&path)]);
        assert_eq!(out.status.code(), Some(1), "{file}: {out:?}");
        assert_lists(&stdout(&out), std::slice::from_ref(line));
    }

    // Two files, two problems; the bad expression shown with a caret
    // under the string.
    let a = dir.path().join("a-expression.yaml");
    let b = dir.path().join("b-handler.yaml");
    let out = mixs(&["validate", path_str(&a), path_str(&b)]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = stdout(&out);
    assert_lists(&text, &problems[..2]);
    let mut lines = text.lines().skip_while(|l| !l.contains("bad-match"));
    lines.next();
    assert_eq!(lines.next(), Some(" | request.size == \"big\""), "{text}");
    assert_eq!(lines.next(), Some(" |                 ^^^^^"), "{text}");
}

#[test]
fn validate_lists_every_problem_of_a_directory() {
    let dir = broken_config();
    let root = path_str(dir.path());
    let out = mixs(&["validate", root]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    // The adapter's params problem too, not only the validator's.
    assert_lists(&stdout(&out), &broken_config_problems(root));
}

#[test]
fn validate_refuses_a_missing_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-config");
    let missing = path_str(&missing);
    let out = mixs(&["validate", missing]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(stdout(&out), "", "nothing validated");
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!("mixs validate: cannot read {missing}: ")),
        "{err}"
    );

    // Next to a good directory, the missing one still fails the run.
    let shipped = shipped_config();
    let out = mixs(&["validate", path_str(&shipped), missing]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        stderr(&out).contains(&format!("cannot read {missing}")),
        "{out:?}"
    );

    let out = mixs(&["validate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("name at least one config file or directory"),
        "{out:?}"
    );
}

/// `mixs expr` and its first two lines (value, type) and the rest.
fn expr(args: &[&str]) -> (Output, Vec<String>) {
    let mut all = vec!["expr"];
    all.extend_from_slice(args);
    let out = mixs(&all);
    let lines = stdout(&out).lines().map(str::to_owned).collect();
    (out, lines)
}

#[test]
fn expr_evaluates_against_command_line_attributes() {
    let (out, lines) = expr(&["--attr", "request.size=1234", "request.size + 1"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(lines, ["1235", "type: INT64", "read: request.size (Exact)"]);

    // Every kind of value the vocabulary types read from text.
    let (out, lines) = expr(&[
        "--attr",
        "connection.mtls=true",
        "--attr=response.duration=1.5s",
        "conditional(connection.mtls, response.duration, \"0s\")",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(lines[..2], ["1.5s", "type: DURATION"]);
    let (_, lines) = expr(&[
        "--attr",
        "request.time=2017-01-02T15:04:05Z",
        "request.time == timestamp(\"2017-01-02T15:04:05Z\")",
    ]);
    assert_eq!(lines[..2], ["true", "type: BOOL"]);
    let (_, lines) = expr(&["--attr", "source.ip=10.0.0.1", "source.ip"]);
    assert_eq!(lines[..2], ["10.0.0.1", "type: IP_ADDRESS"]);
    let (_, lines) = expr(&[
        "--attr",
        "request.headers=user-agent:curl,x-b3:1",
        "request.headers[\"user-agent\"] + \"/\" + request.headers[\"x-b3\"]",
    ]);
    assert_eq!(lines[..2], ["curl/1", "type: STRING"]);
    let (_, lines) = expr(&["0.5 + 0.25"]);
    assert_eq!(lines[..2], ["0.75", "type: DOUBLE"]);

    // A later value of an attribute wins.
    let (_, lines) = expr(&[
        "--attr",
        "response.code=200",
        "--attr",
        "response.code=404",
        "response.code",
    ]);
    assert_eq!(lines[..2], ["404", "type: INT64"]);

    // The default operator: absent, then present.
    let (out, lines) = expr(&["request.headers[\"user-agent\"] | \"none\""]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        lines,
        ["none", "type: STRING", "read: request.headers (Absence)"]
    );
    let (_, lines) = expr(&[
        "--attr",
        "request.headers=user-agent:curl",
        "request.headers[\"user-agent\"] | \"none\"",
    ]);
    assert_eq!(
        lines,
        [
            "curl",
            "type: STRING",
            "read: request.headers[\"user-agent\"] (Exact)"
        ]
    );
}

#[test]
fn expr_reads_attributes_as_json() {
    let json = r#"{"request.size": 12, "response.duration": "2s", "connection.mtls": false,
        "request.headers": {"user-agent": "curl"}, "request.path": "/reviews"}"#;
    let source = "conditional(connection.mtls, 0, request.size) + size(request.path)";
    let (out, lines) = expr(&["--json", json, source]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(lines[..2], ["20", "type: INT64"]);
    let (_, lines) = expr(&["--json", json, "request.headers[\"user-agent\"]"]);
    assert_eq!(lines[..2], ["curl", "type: STRING"]);
    let (_, lines) = expr(&["--json", json, "response.duration > \"1500ms\""]);
    assert_eq!(lines[..2], ["true", "type: BOOL"]);

    // From a file, and with a flag given after it winning.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("attrs.json");
    std::fs::write(&file, json).unwrap();
    let at_file = format!("@{}", path_str(&file));
    let (out, lines) = expr(&[
        "--json",
        &at_file,
        "--attr",
        "request.size=30",
        "request.size",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(lines[..2], ["30", "type: INT64"]);

    // A JSON value of the wrong type for the attribute is named.
    let (out, _) = expr(&["--json", r#"{"request.size": 1.5}"#, "request.size"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("attribute request.size is INT64: cannot read \"1.5\" as one"),
        "{out:?}"
    );
    let (out, _) = expr(&["--json", "[1]", "request.size"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("expected one object of attribute name to value"),
        "{out:?}"
    );
}

/// The column of the caret line's first `^` and the caret count.
fn caret(lines: &[String]) -> (usize, usize) {
    let line = lines
        .iter()
        .find(|l| l.starts_with(" | ") && l.contains('^'))
        .unwrap_or_else(|| panic!("no caret line: {lines:?}"));
    let at = line.find('^').unwrap();
    (at, line[at..].chars().take_while(|c| *c == '^').count())
}

#[test]
fn expr_points_at_a_type_error() {
    let source = "request.size == 1 && response.code == \"404\"";
    let (out, lines) = expr(&["--attr", "request.size=1", source]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let bad = source.find("\"404\"").unwrap();
    assert_eq!(
        lines[0],
        format!(
            "error: 1:{}: operator '==' argument 2: expected INT64 (the type of argument 1), got STRING",
            bad + 1
        )
    );
    // The source echoed, the caret under `"404"` and nowhere else.
    assert_eq!(lines[1], format!(" | {source}"));
    assert_eq!(caret(&lines), (" | ".len() + bad, "\"404\"".len()));
    assert_eq!(lines.len(), 3, "{lines:?}");

    // A parse error points at the end where an operand is missing.
    let source = "request.size == (1 +";
    let (out, lines) = expr(&[source]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        lines[0],
        format!(
            "error: 1:{}: expected an operand, found end of expression",
            source.len() + 1
        )
    );
    assert_eq!(caret(&lines), (" | ".len() + source.len(), 1));
}

#[test]
fn expr_reports_unknown_attributes() {
    // In the expression: a type error, located.
    let source = "request.size == 1 || nosuch.attr == 1";
    let (out, lines) = expr(&[source]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let at = source.find("nosuch.attr").unwrap();
    assert_eq!(
        lines[0],
        format!("error: 1:{}: unknown attribute nosuch.attr", at + 1)
    );
    assert_eq!(caret(&lines), (" | ".len() + at, "nosuch.attr".len()));

    // Given as an attribute, from a flag or from JSON: refused before
    // anything is evaluated.
    let (out, lines) = expr(&["--attr", "nosuch.attr=1", "request.size | 0"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(lines.is_empty(), "{lines:?}");
    assert!(
        stderr(&out).contains("attribute \"nosuch.attr\" is not in the vocabulary"),
        "{out:?}"
    );
    let (out, _) = expr(&["--json", r#"{"nosuch.attr": 1}"#, "request.size | 0"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        stderr(&out).contains("attribute \"nosuch.attr\" is not in the vocabulary"),
        "{out:?}"
    );

    // Known but absent outside `|`: an evaluation error naming it.
    let (out, lines) = expr(&["request.size + 1"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        lines,
        ["error: lookup failed: 'request.size'", "type: INT64"]
    );
}
