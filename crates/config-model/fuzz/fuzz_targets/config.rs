//! Config loading and validation never panic, whatever the text.
//!
//! Run from `crates/config-model` (seeded with the test configs):
//! `cargo +nightly fuzz run config fuzz/corpus/config testdata/configs/valid testdata/configs/broken`

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mixer_attributes::ValueType as T;
use mixer_config::load::Documents;
use mixer_config::schema::{AdapterSchema, FieldSchema, Schemas, TemplateSchema, Types, Variety};
use mixer_config::validate::Validator;

fn schemas() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        Schemas::new()
            .template(TemplateSchema {
                name: "checknothing".into(),
                variety: Variety::Check,
                fields: vec![],
            })
            .template(TemplateSchema {
                name: "listentry".into(),
                variety: Variety::Check,
                fields: vec![
                    FieldSchema::expr("value", Types::OneOf(vec![T::String, T::IpAddress]))
                        .required(),
                ],
            })
            .template(TemplateSchema {
                name: "metric".into(),
                variety: Variety::Report,
                fields: vec![
                    FieldSchema::expr("value", Types::Any).required(),
                    FieldSchema::map("dimensions", Types::Any),
                ],
            })
            .adapter(AdapterSchema {
                name: "denier".into(),
                templates: Some(vec!["checknothing".into(), "listentry".into()]),
            })
            .adapter(AdapterSchema {
                name: "prometheus".into(),
                templates: None,
            })
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for json in [false, true] {
        let mut docs = Documents::new();
        if json {
            docs.add_json("fuzz.json", text);
        } else {
            docs.add_yaml("fuzz.yaml", text);
        }
        match Validator::new(schemas()).validate(docs) {
            // Printing exercises every Display path (carets included).
            Ok(config) => {
                for warning in &config.warnings {
                    let _ = warning.to_string();
                }
            }
            Err(err) => {
                let _ = err.to_string();
            }
        }
    }
});
