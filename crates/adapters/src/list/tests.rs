use super::*;
use crate::template::{CheckInstance, CheckNothingInstance, ListEntryInstance};
use crate::{Answer, CheckResult};
use mixer_attributes::Value;
use mixer_proto::code;
use serde_json::json;

fn parse(v: serde_json::Value) -> Result<ListParams, Error> {
    ListParams::parse(&Params::new(v))
}

fn errors(v: serde_json::Value) -> Vec<String> {
    crate::params::error_texts(parse(v))
}

#[test]
fn defaults_and_every_param() {
    let p = parse(json!({})).unwrap();
    assert_eq!((p.provider, p.ca_certificates), (None, None));
    assert_eq!(p.refresh_interval, Duration::from_secs(60));
    assert_eq!(p.ttl, Duration::from_secs(300));
    assert_eq!(p.caching_interval, Duration::from_secs(300));
    assert_eq!(p.caching_use_count, 10_000);
    assert_eq!(p.entry_type, EntryType::Strings);
    assert!(!p.blacklist && p.overrides.is_empty());
    let p = parse(json!({
        "providerUrl": "http://127.0.0.1:1/x", "caCertificates": "/etc/ca.pem",
        "refreshInterval": "2s", "ttl": "2s",
        "cachingInterval": "7s", "cachingUseCount": 3, "overrides": ["10.0.0.0/8"],
        "entryType": "IP_ADDRESSES", "blacklist": true
    }))
    .unwrap();
    assert!(matches!(
        p.provider,
        Some(Provider::Http {
            port: 1,
            tls: false,
            ..
        })
    ));
    assert_eq!(p.ca_certificates.as_deref(), Some("/etc/ca.pem"));
    assert_eq!(
        (p.refresh_interval, p.ttl),
        (Duration::from_secs(2), Duration::from_secs(2))
    );
    assert_eq!(
        (p.caching_interval, p.caching_use_count),
        (Duration::from_secs(7), 3)
    );
    assert_eq!((p.entry_type, p.blacklist), (EntryType::IpAddresses, true));
}

#[test]
fn validation_errors() {
    assert_eq!(
        errors(json!({
            "providerUrl": "https://lists example/x", "caCertificates": "",
            "refreshInterval": "500ms", "ttl": "100ms",
            "cachingUseCount": -1, "overrides": ["10.0.0.1", "10.0.0.0/33"],
            "entryType": "IP_ADDRESSES", "blacklist": "yes", "provider": "x"
        })),
        [
            "providerUrl: \"https://lists example/x\": \"lists example\" is not a valid DNS name or IP address for TLS",
            "caCertificates: must not be empty",
            "refreshInterval: must be at least 1s",
            "ttl: must be at least refreshInterval",
            "cachingUseCount: must be between 0 and 2147483647, got -1",
            "overrides[1]: \"10.0.0.0/33\" is not an IP address or CIDR range",
            "blacklist: expected true or false, got \"yes\"",
            "provider: unknown field (expected one of: providerUrl, caCertificates, \
             refreshInterval, ttl, cachingInterval, cachingUseCount, overrides, entryType, \
             blacklist)",
        ]
    );
    assert_eq!(
        errors(
            json!({"providerUrl": "gopher://x", "overrides": ["a", "(b"], "entryType": "REGEX"})
        ),
        [
            "providerUrl: \"gopher://x\" is not an http://, https:// or file:// URL",
            "overrides[1]: not a valid regular expression: regex parse error:\n    (b\n    ^\nerror: unclosed group",
        ]
    );
    assert_eq!(
        errors(json!({"entryType": "strings", "overrides": [1], "ttl": "1x"})),
        [
            "ttl: expected a duration such as \"5s\" or \"100ms\", got \"1x\"",
            "overrides[0]: expected a string, got 1",
            "entryType: expected one of STRINGS, CASE_INSENSITIVE_STRINGS, IP_ADDRESSES, REGEX, got \"strings\"",
        ]
    );
    assert_eq!(
        errors(json!({"cachingInterval": "5 minutes", "caCertificates": 7})),
        [
            "caCertificates: expected a string, got 7",
            "cachingInterval: expected a duration such as \"5s\" or \"100ms\", got \"5 minutes\"",
        ]
    );
    assert_eq!(
        errors(json!({"cachingInterval": "-1s"})),
        ["cachingInterval: expected a duration such as \"5s\" or \"100ms\", got \"-1s\""]
    );
}

#[test]
fn https_params_validate_without_reading_the_bundle() {
    let p = parse(json!({
        "providerUrl": "https://127.0.0.1:8443/list", "caCertificates": "/nonexistent/ca.pem"
    }))
    .unwrap();
    assert!(p.provider.as_ref().is_some_and(Provider::is_tls));
    assert_eq!(p.ca_certificates.as_deref(), Some("/nonexistent/ca.pem"));
}

#[test]
fn an_unreadable_ca_bundle_fails_the_build_naming_param_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("ca.pem");
    std::fs::write(&not_pem, "not a certificate\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for (path, why) in [
        (&missing, "No such file"),
        (&not_pem, "holds no PEM certificate"),
    ] {
        let p = parse(json!({
            "providerUrl": "https://127.0.0.1:8443/list",
            "caCertificates": path.display().to_string()
        }))
        .unwrap();
        let e = ListHandler::start(p, &BuildEnv::new(rt.handle().clone())).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, Error::Build(_)), "{text}");
        assert!(
            text.contains(&format!("caCertificates: {}: ", path.display())) && text.contains(why),
            "{text}"
        );
    }
}

fn handler(v: serde_json::Value) -> ListHandler {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    ListHandler::start(parse(v).unwrap(), &BuildEnv::new(rt.handle().clone())).unwrap()
}

fn check(h: &ListHandler, v: Value) -> CheckResult {
    let i = CheckInstance::ListEntry(ListEntryInstance {
        name: "l".into(),
        value: v,
    });
    match h.check(&i) {
        Answer::Ready(r) => r.unwrap(),
        Answer::Pending(_) => panic!("the list answers inline"),
    }
}

fn s(v: &str) -> Value {
    Value::String(v.into())
}

fn ip(v: &str) -> Value {
    Value::IpAddress(v.parse().unwrap())
}

/// (entry type, list, blacklist, value, expected code, expected message)
#[test]
fn decision_table() {
    type Row = (
        &'static str,
        &'static [&'static str],
        bool,
        Value,
        i32,
        &'static str,
    );
    let d = code::PERMISSION_DENIED;
    let ok = code::OK;
    let bad = code::INVALID_ARGUMENT;
    let rows: Vec<Row> = vec![
        ("STRINGS", &["a", "b"], false, s("a"), ok, ""),
        (
            "STRINGS",
            &["a", "b"],
            false,
            s("A"),
            d,
            "A is not whitelisted",
        ),
        ("STRINGS", &["a", "b"], true, s("b"), d, "b is blacklisted"),
        ("STRINGS", &["a", "b"], true, s("c"), ok, ""),
        ("STRINGS", &["10.0.0.1"], false, ip("10.0.0.1"), ok, ""),
        (
            "STRINGS",
            &["a"],
            false,
            Value::Int64(3),
            bad,
            "3 (INT64) is not a string or IP address",
        ),
        (
            "STRINGS",
            &["a"],
            false,
            Value::Bool(true),
            bad,
            "true (BOOL) is not a string or IP address",
        ),
        ("STRINGS", &["a"], false, Value::DnsName("a".into()), ok, ""),
        (
            "CASE_INSENSITIVE_STRINGS",
            &["Alice"],
            false,
            s("aLiCe"),
            ok,
            "",
        ),
        (
            "CASE_INSENSITIVE_STRINGS",
            &["Alice"],
            false,
            s("alice"),
            ok,
            "",
        ),
        (
            "CASE_INSENSITIVE_STRINGS",
            &["ÉTÉ"],
            true,
            s("été"),
            d,
            "été is blacklisted",
        ),
        (
            "CASE_INSENSITIVE_STRINGS",
            &["Alice"],
            false,
            s("bob"),
            d,
            "bob is not whitelisted",
        ),
        (
            "IP_ADDRESSES",
            &["10.0.0.0/8", "::1"],
            false,
            ip("10.9.8.7"),
            ok,
            "",
        ),
        (
            "IP_ADDRESSES",
            &["10.0.0.0/8", "::1"],
            false,
            s("10.9.8.7"),
            ok,
            "",
        ),
        (
            "IP_ADDRESSES",
            &["10.0.0.0/8", "::1"],
            false,
            Value::Bytes(vec![10, 1, 1, 1]),
            ok,
            "",
        ),
        (
            "IP_ADDRESSES",
            &["10.0.0.0/8", "::1"],
            false,
            ip("::1"),
            ok,
            "",
        ),
        (
            "IP_ADDRESSES",
            &["10.0.0.0/8", "::1"],
            false,
            ip("11.0.0.1"),
            d,
            "11.0.0.1 is not whitelisted",
        ),
        (
            "IP_ADDRESSES",
            &["192.168.0.1"],
            false,
            ip("192.168.0.2"),
            d,
            "192.168.0.2 is not whitelisted",
        ),
        (
            "IP_ADDRESSES",
            &["192.168.0.1"],
            true,
            ip("192.168.0.1"),
            d,
            "192.168.0.1 is blacklisted",
        ),
        (
            "IP_ADDRESSES",
            &["10.0.0.0/8"],
            false,
            s("not-an-ip"),
            bad,
            "not-an-ip is not a valid IP address",
        ),
        (
            "IP_ADDRESSES",
            &["10.0.0.0/8"],
            false,
            Value::Bytes(vec![1, 2]),
            bad,
            "0102 (BYTES) is not a string or IP address",
        ),
        ("REGEX", &["^/api/", "admin"], false, s("/api/v1"), ok, ""),
        (
            "REGEX",
            &["^/api/", "admin"],
            false,
            s("/x/admin/y"),
            ok,
            "",
        ),
        (
            "REGEX",
            &["^/api/", "admin"],
            false,
            s("/x/api/"),
            d,
            "/x/api/ is not whitelisted",
        ),
        (
            "REGEX",
            &["^/api/", "admin"],
            true,
            s("/api/"),
            d,
            "/api/ is blacklisted",
        ),
        (
            "REGEX",
            &["^/api/$"],
            false,
            s("/api/x"),
            d,
            "/api/x is not whitelisted",
        ),
    ];
    for (ty, list, blacklist, value, want_code, want_msg) in rows {
        let h = handler(
            json!({"entryType": ty, "overrides": list, "blacklist": blacklist,
            "cachingInterval": "9s", "cachingUseCount": 4}),
        );
        let r = check(&h, value.clone());
        assert_eq!(
            (r.status.code, r.status.message.as_str()),
            (want_code, want_msg),
            "{ty} {list:?} blacklist={blacklist} {value:?}"
        );
        assert_eq!(
            (r.valid_duration, r.valid_use_count),
            (Duration::from_secs(9), 4)
        );
    }
}

#[test]
fn other_templates_are_refused() {
    let h = handler(json!({}));
    let i = CheckInstance::CheckNothing(CheckNothingInstance { name: "x".into() });
    assert!(matches!(
        h.check(&i),
        Answer::Ready(Err(Error::Unsupported { .. }))
    ));
}

#[test]
fn ip_bodies_in_yaml_or_lines() {
    use super::matcher::parse_body;
    assert_eq!(
        parse_body(
            EntryType::IpAddresses,
            "whitelist:\n  - 10.0.0.0/8\n  - \"1.2.3.4\"\n"
        )
        .unwrap(),
        ["10.0.0.0/8", "1.2.3.4"]
    );
    assert_eq!(
        parse_body(EntryType::IpAddresses, "whitelist: [10.0.0.0/8, \"::1\"]").unwrap(),
        ["10.0.0.0/8", "::1"]
    );
    assert_eq!(
        parse_body(EntryType::IpAddresses, "10.0.0.0/8\n\n 1.2.3.4 \n").unwrap(),
        ["10.0.0.0/8", "1.2.3.4"]
    );
    assert_eq!(
        parse_body(EntryType::Strings, "a\r\n\r\nb c\n").unwrap(),
        ["a", "b c"]
    );
    assert!(parse_body(EntryType::IpAddresses, "whitelist: {a: 1}").is_err());
}
