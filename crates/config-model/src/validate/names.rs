//! How a rule's references to handlers and instances resolve to
//! fully-qualified names.

/// The fully-qualified names a reference in a rule of `rule_namespace` may
/// mean, in the order they are tried; `kind` is `handler` or `instance`.
///
/// - `name` (no dot) is `name.<kind>.<rule namespace>`;
/// - `a.b` is tried as `a.b.<rule namespace>` (old style: `b` is the kind),
///   then as `a.<kind>.b` (`b` is the namespace);
/// - two dots or more is already fully qualified.
///
/// ```
/// use mixer_config::validate::reference_candidates;
///
/// assert_eq!(reference_candidates("h", "handler", "ns"), ["h.handler.ns"]);
/// assert_eq!(
///     reference_candidates("h.listchecker", "handler", "ns"),
///     ["h.listchecker.ns", "h.handler.listchecker"],
/// );
/// assert_eq!(reference_candidates("h.handler.other", "handler", "ns"), ["h.handler.other"]);
/// ```
pub fn reference_candidates(reference: &str, kind: &str, rule_namespace: &str) -> Vec<String> {
    match reference.matches('.').count() {
        0 => vec![format!("{reference}.{kind}.{rule_namespace}")],
        1 => {
            let (name, second) = reference.split_once('.').unwrap_or((reference, ""));
            vec![
                format!("{reference}.{rule_namespace}"),
                format!("{name}.{kind}.{second}"),
            ]
        }
        _ => vec![reference.to_owned()],
    }
}
