//! Mixer configuration: attribute manifests, the expression language, and
//! Istio's `config.istio.io/v1alpha2` handler/instance/rule documents,
//! loaded from YAML or JSON and validated with every problem reported at once.
//!
//! This crate knows no concrete adapter or template: template schemas are
//! data handed to the validator.

pub mod error;
pub mod expr;
pub mod load;
pub mod manifest;
pub mod model;
pub mod schema;

pub use error::{Error, Problem};
pub mod validate;
