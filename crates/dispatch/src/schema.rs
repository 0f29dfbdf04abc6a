//! The bridge between the two halves that do not know each other: the
//! adapters' templates and registry, described as the data the config
//! validator checks documents against.

use mixer_adapters::template::FieldType;
use mixer_adapters::{Registry, Template};
use mixer_config::schema::{AdapterSchema, FieldSchema, Schemas, TemplateSchema, Types, Variety};

/// The templates and the registry's adapters as config-validator schemas.
pub fn schemas(registry: &Registry) -> Schemas {
    let mut s = Schemas::new();
    for t in Template::ALL {
        s = s.template(template_schema(t));
    }
    for a in registry.iter() {
        s = s.adapter(AdapterSchema {
            name: a.name().to_string(),
            templates: Some(a.templates().iter().map(|t| t.name().to_string()).collect()),
        });
    }
    s
}

fn template_schema(t: Template) -> TemplateSchema {
    let schema = t.schema();
    TemplateSchema {
        name: schema.name.to_string(),
        variety: variety(schema.variety),
        fields: schema
            .fields
            .iter()
            .map(|f| {
                let field = match f.ty {
                    FieldType::OneOf(types) => {
                        FieldSchema::expr(f.name, Types::OneOf(types.to_vec()))
                    }
                    FieldType::MapOfAny => FieldSchema::map(f.name, Types::Any),
                };
                if f.required { field.required() } else { field }
            })
            .collect(),
    }
}

pub(crate) fn variety(v: mixer_adapters::Variety) -> Variety {
    match v {
        mixer_adapters::Variety::Check => Variety::Check,
        mixer_adapters::Variety::Quota => Variety::Quota,
        mixer_adapters::Variety::Report => Variety::Report,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_and_adapter_is_described() {
        let s = schemas(&Registry::builtin());
        let metric = s.get_template("metric").unwrap();
        assert_eq!(metric.variety, Variety::Report);
        assert!(metric.field("value").unwrap().required);
        assert_eq!(
            metric.field("dimensions").unwrap().kind,
            mixer_config::schema::FieldKind::Map(Types::Any)
        );
        assert_eq!(s.templates().count(), Template::ALL.len());
        let denier = s.get_adapter("denier").unwrap();
        assert!(
            denier
                .templates
                .as_ref()
                .unwrap()
                .contains(&"checknothing".to_string())
        );
    }
}
