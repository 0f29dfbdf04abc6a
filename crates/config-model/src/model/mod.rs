//! The configuration model: names, origins, and the validated [`Config`]
//! the dispatcher consumes.

mod config;
mod name;
mod origin;
mod path;
mod subject;

pub use config::{
    Action, Config, FieldValue, Handler, HeaderOperation, HeaderOperationKind, Instance, Rule,
};
pub use name::ObjectName;
pub use origin::Origin;
pub use path::{FieldPath, Segment};
pub use subject::{Category, Subject};
