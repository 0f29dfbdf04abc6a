//! The loader's documented limits, and unreadable paths.

mod config_support;

use mixer_config::Error;
use mixer_config::load::{Documents, MAX_DIR_DEPTH, MAX_SOURCE_BYTES};

const RULE: &str = "apiVersion: config.istio.io/v1alpha2\nkind: rule\nmetadata: {name: r}\n";

#[test]
fn a_source_over_the_size_limit_is_a_problem_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.yaml");
    let mut text = String::from(RULE);
    text.push_str(&"#".repeat(MAX_SOURCE_BYTES));
    std::fs::write(&big, &text).unwrap();
    std::fs::write(
        dir.path().join("ok.yaml"),
        RULE.replace("name: r", "name: s"),
    )
    .unwrap();
    let mut docs = Documents::new();
    docs.add_dir(dir.path()).unwrap();
    // The file next to it is still read.
    assert_eq!(docs.documents().len(), 1);
    let problems: Vec<String> = docs.problems().iter().map(ToString::to_string).collect();
    assert_eq!(
        problems,
        [format!(
            "{}: {} bytes is over the limit of {MAX_SOURCE_BYTES} bytes",
            big.display(),
            text.len()
        )]
    );
    let mut docs = Documents::new();
    docs.add_yaml("inline.yaml", &text);
    assert!(docs.documents().is_empty());
    assert_eq!(docs.problems().len(), 1);
}

#[test]
fn directories_deeper_than_the_limit_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut deep = dir.path().to_path_buf();
    for i in 0..=MAX_DIR_DEPTH {
        deep.push(format!("d{i}"));
    }
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("r.yaml"), RULE).unwrap();
    std::fs::write(deep.parent().unwrap().join("r.yaml"), RULE).unwrap();
    let mut docs = Documents::new();
    docs.add_dir(dir.path()).unwrap();
    assert_eq!(docs.documents().len(), 1, "the file at the limit is read");
    let problems: Vec<String> = docs.problems().iter().map(ToString::to_string).collect();
    assert_eq!(
        problems,
        [format!(
            "{}: directory nested deeper than {MAX_DIR_DEPTH} levels; not read",
            deep.display()
        )]
    );
}

#[test]
fn an_unreadable_path_is_an_immediate_error_and_binary_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.yaml");
    let err = Documents::new().add_path(&missing).unwrap_err();
    assert!(matches!(err, Error::Io { .. }));
    assert!(
        err.to_string()
            .starts_with(&format!("cannot read {}: ", missing.display())),
        "{err}"
    );
    // Not text: a problem like a syntax error, and the other files load.
    let binary = dir.path().join("binary.yaml");
    std::fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
    let mut docs = Documents::new();
    docs.add_file(&binary).unwrap();
    let problems: Vec<String> = docs.problems().iter().map(ToString::to_string).collect();
    assert_eq!(
        problems,
        [format!(
            "{}: YAML syntax error: not UTF-8 text (invalid utf-8 sequence of 1 bytes from index 0)",
            binary.display()
        )]
    );
}
