use super::*;
use crate::template::{CheckNothingInstance, ListEntryInstance};
use mixer_attributes::Value;
use serde_json::json;

fn parse(v: serde_json::Value) -> Result<DenierParams, Error> {
    DenierParams::parse(&Params::new(v))
}

fn errors(v: serde_json::Value) -> Vec<String> {
    crate::params::error_texts(parse(v))
}

#[test]
fn defaults() {
    let p = parse(json!({})).unwrap();
    assert_eq!(p.status, Status::new(code::FAILED_PRECONDITION, ""));
    assert_eq!(p.valid_duration, Duration::from_secs(5));
    assert_eq!(p.valid_use_count, 1000);
    assert_eq!(parse(serde_json::Value::Null).unwrap(), p);
}

#[test]
fn every_param() {
    let p = parse(json!({
        "status": {"code": 7, "message": "go away"},
        "validDuration": "250ms",
        "validUseCount": 3
    }))
    .unwrap();
    assert_eq!(p.status, Status::new(code::PERMISSION_DENIED, "go away"));
    assert_eq!(p.valid_duration, Duration::from_millis(250));
    assert_eq!(p.valid_use_count, 3);
    let named = parse(json!({"status": {"code": "UNAUTHENTICATED"}})).unwrap();
    assert_eq!(named.status.code, code::UNAUTHENTICATED);
}

#[test]
fn validation_errors() {
    assert_eq!(
        errors(json!({"status": {"code": 17, "mesage": "x"}, "validUseCount": -1})),
        [
            "status.code: expected a google.rpc.Code (0 to 16, or a name such as \
             PERMISSION_DENIED), got 17",
            "status.mesage: unknown field (expected one of: code, message, details)",
            "validUseCount: must be between 0 and 2147483647, got -1",
        ]
    );
    assert_eq!(
        errors(json!({"status": "DENIED", "validDuration": 5, "validUseCount": "many"})),
        [
            "status: expected an object, got a string",
            "validDuration: expected a duration such as \"5s\" or \"100ms\", got 5",
            "validUseCount: expected an integer, got \"many\"",
        ]
    );
    assert_eq!(
        errors(json!({"status": {"code": "NOPE"}, "x": 1})),
        [
            "status.code: expected a google.rpc.Code (0 to 16, or a name such as \
             PERMISSION_DENIED), got \"NOPE\"",
            "x: unknown field (expected one of: status, validDuration, validUseCount)",
        ]
    );
}

#[tokio::test]
async fn answers_every_check_and_grants_no_quota() {
    let h = Box::new(
        parse(json!({"status": {"code": 7, "message": "no"}, "validDuration": "1s"})).unwrap(),
    )
    .build(&BuildEnv::current())
    .unwrap();
    for inst in [
        CheckInstance::CheckNothing(CheckNothingInstance { name: "a".into() }),
        CheckInstance::ListEntry(ListEntryInstance {
            name: "b".into(),
            value: Value::String("x".into()),
        }),
    ] {
        let a = h.check(&inst);
        assert!(a.is_ready());
        let r = a.resolve().await.unwrap();
        assert_eq!(r.status, Status::new(code::PERMISSION_DENIED, "no"));
        assert_eq!(r.valid_duration, Duration::from_secs(1));
        assert_eq!(r.valid_use_count, 1000);
    }
    let q = QuotaInstance {
        name: "q".into(),
        dimensions: Default::default(),
    };
    let args = QuotaArgs {
        amount: 5,
        ..Default::default()
    };
    let r = h.quota(&q, &args).resolve().await.unwrap();
    assert_eq!(r.granted, 0);
    assert_eq!(r.status.code, code::PERMISSION_DENIED);

    let allow = DenierHandler::new(parse(json!({"status": {"code": 0}})).unwrap());
    let r = allow.quota(&q, &args).resolve().await.unwrap();
    assert_eq!((r.granted, r.status.code), (0, code::RESOURCE_EXHAUSTED));
    assert!(
        allow
            .check(&CheckInstance::CheckNothing(CheckNothingInstance {
                name: "a".into()
            }))
            .resolve()
            .await
            .unwrap()
            .status
            .is_ok()
    );
}
