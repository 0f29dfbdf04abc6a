//! Attribute manifests: the vocabulary expressions are checked against.
