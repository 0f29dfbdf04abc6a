//! The expression language: parse, check, compile, evaluate.
