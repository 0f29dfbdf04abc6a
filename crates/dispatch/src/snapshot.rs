//! The compiled, immutable form of one configuration: handlers built,
//! instances compiled, and per-namespace routing tables for each variety,
//! the default namespace's rules merged in, in rule order then action order.

use std::collections::{BTreeSet, HashMap};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use mixer_adapters::{BuildEnv, Clock, Error as AdapterError, Params, Registry, Variety};
use mixer_config::expr::Expression;
use mixer_config::model::{Config, Handler};
use tokio::runtime::Handle;

use crate::error::Problem;
use crate::instance::CompiledInstance;
use crate::slot::{HandlerSlot, panic_message};

/// A rule's compiled condition.
pub(crate) struct CompiledRule {
    pub(crate) name: Arc<str>,
    pub(crate) condition: Option<Expression>,
}

/// One (handler, instance) dispatch of a rule action. `id` is dense per
/// variety across the snapshot, so that a request can tell cheaply whether
/// it already dispatched the pair.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Pair {
    pub(crate) handler: u32,
    pub(crate) instance: u32,
    pub(crate) id: u32,
}

/// A rule's actions of one variety.
pub(crate) struct Route {
    pub(crate) rule: u32,
    pub(crate) pairs: Vec<Pair>,
}

/// What applies to requests of one namespace, per variety, in order.
#[derive(Default)]
pub(crate) struct Routes {
    pub(crate) check: Vec<Route>,
    pub(crate) quota: Vec<Route>,
    pub(crate) report: Vec<Route>,
}

impl Routes {
    pub(crate) fn of(&self, v: Variety) -> &[Route] {
        match v {
            Variety::Check => &self.check,
            Variety::Quota => &self.quota,
            Variety::Report => &self.report,
        }
    }
}

/// A compiled configuration.
pub(crate) struct Snapshot {
    pub(crate) generation: u64,
    pub(crate) handlers: Vec<Arc<HandlerSlot>>,
    pub(crate) instances: Vec<CompiledInstance>,
    pub(crate) rules: Vec<CompiledRule>,
    pub(crate) namespaces: HashMap<Box<str>, Routes>,
    pub(crate) default_routes: Routes,
    /// Number of distinct (handler, instance) pairs per variety.
    pub(crate) pair_counts: [usize; 3],
}

impl Snapshot {
    pub(crate) fn empty() -> Snapshot {
        Snapshot {
            generation: 0,
            handlers: Vec::new(),
            instances: Vec::new(),
            rules: Vec::new(),
            namespaces: HashMap::new(),
            default_routes: Routes::default(),
            pair_counts: [0; 3],
        }
    }

    pub(crate) fn routes(&self, namespace: Option<&str>) -> &Routes {
        namespace
            .and_then(|ns| self.namespaces.get(ns))
            .unwrap_or(&self.default_routes)
    }

    pub(crate) fn handler(&self, name: &str) -> Option<&Arc<HandlerSlot>> {
        self.handlers.iter().find(|h| &*h.name == name)
    }
}

/// What the builder needs besides the config.
pub(crate) struct BuildContext<'a> {
    pub(crate) registry: &'a Registry,
    pub(crate) runtime: &'a Handle,
    pub(crate) clock: &'a Arc<dyn Clock>,
    pub(crate) queue_capacity: usize,
    pub(crate) generation: u64,
}

/// Which handlers a build made, reused and let go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    /// The new snapshot's generation (1 for the first configuration).
    pub generation: u64,
    /// Handlers built for this configuration.
    pub built: Vec<String>,
    /// Handlers carried over from the running configuration with their
    /// state, their adapter and params unchanged.
    pub reused: Vec<String>,
    /// Handlers of the running configuration not carried over; each is
    /// closed once no request uses it any more.
    pub replaced: Vec<String>,
    /// Rules in the configuration.
    pub rules: usize,
    /// Warnings of the configuration (documents skipped...).
    pub warnings: Vec<String>,
}

fn variety_index(v: Variety) -> usize {
    match v {
        Variety::Check => 0,
        Variety::Quota => 1,
        Variety::Report => 2,
    }
}

pub(crate) fn build(
    config: Config,
    old: &Snapshot,
    ctx: &BuildContext<'_>,
) -> Result<(Snapshot, ReloadSummary), Vec<Problem>> {
    let mut problems = Vec::new();
    let Config {
        handlers,
        instances,
        rules,
        default_namespace,
        warnings,
        ..
    } = config;

    // Instances.
    let mut compiled = Vec::with_capacity(instances.len());
    let mut instance_index = HashMap::new();
    for (name, instance) in instances {
        match CompiledInstance::compile(instance) {
            Ok(c) => {
                instance_index.insert(name, compiled.len() as u32);
                compiled.push(c);
            }
            Err(p) => problems.extend(p),
        }
    }

    // Handlers: validate every one, build those some rule uses.
    let used: BTreeSet<&str> = rules
        .iter()
        .flat_map(|r| r.actions.iter().map(|a| a.handler.as_str()))
        .collect();
    struct Planned<'h> {
        name: String,
        slot: Option<Arc<HandlerSlot>>,
        builder: Option<(
            Box<dyn mixer_adapters::HandlerBuilder>,
            Params,
            String,
            bool,
        )>,
        handler: &'h Handler,
    }
    let mut planned = Vec::new();
    for (name, h) in &handlers {
        if !used.contains(name.as_str()) {
            // Still validated: an unused handler with bad params is a
            // mistake the operator wants to hear about now.
            let params = Params::new(h.params.clone());
            if let Err(e) = validate(ctx.registry, &h.adapter, &params) {
                problems.extend(adapter_problems(&e, h));
            }
            continue;
        }
        let params = Params::new(h.params.clone());
        if let Some(slot) = old.handler(name)
            && slot.adapter == h.adapter
            && slot.params == params
        {
            planned.push(Planned {
                name: name.clone(),
                slot: Some(slot.clone()),
                builder: None,
                handler: h,
            });
            continue;
        }
        match validate(ctx.registry, &h.adapter, &params) {
            Ok(b) => {
                let reports = ctx
                    .registry
                    .get(&h.adapter)
                    .is_some_and(|a| a.templates().iter().any(|t| t.variety() == Variety::Report));
                planned.push(Planned {
                    name: name.clone(),
                    slot: None,
                    builder: Some((b, params, h.adapter.clone(), reports)),
                    handler: h,
                })
            }
            Err(e) => problems.extend(adapter_problems(&e, h)),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }

    // Build only once everything else is known good: building has effects
    // (ports, connections, background work).
    let mut summary = ReloadSummary {
        generation: ctx.generation,
        rules: rules.len(),
        warnings: warnings.iter().map(ToString::to_string).collect(),
        ..ReloadSummary::default()
    };
    let mut slots = Vec::with_capacity(planned.len());
    let mut handler_index = HashMap::new();
    for p in planned {
        let slot = match (p.slot, p.builder) {
            (Some(slot), _) => {
                summary.reused.push(p.name.clone());
                slot
            }
            (None, Some((builder, params, adapter, reports))) => {
                let env = BuildEnv::new(ctx.runtime.clone())
                    .with_clock(ctx.clock.clone())
                    .with_handler_name(p.name.as_str());
                match catch_unwind(AssertUnwindSafe(|| builder.build(&env))) {
                    Ok(Ok(handler)) => {
                        summary.built.push(p.name.clone());
                        Arc::new(HandlerSlot::new(
                            Arc::from(p.name.as_str()),
                            adapter,
                            params,
                            handler,
                            reports,
                            ctx.queue_capacity,
                            ctx.runtime.clone(),
                        ))
                    }
                    Ok(Err(e)) => {
                        problems.extend(adapter_problems(&e, p.handler));
                        continue;
                    }
                    Err(panic) => {
                        problems.push(Problem {
                            origin: Some(p.handler.origin.to_string()),
                            subject: Some(format!("handler '{}'", p.name)),
                            field: None,
                            message: format!(
                                "adapter panicked while building: {}",
                                panic_message(&*panic)
                            ),
                        });
                        continue;
                    }
                }
            }
            (None, None) => continue,
        };
        handler_index.insert(p.name, slots.len() as u32);
        slots.push(slot);
    }
    if !problems.is_empty() {
        // Dropping the fresh slots closes their handlers; reused ones stay
        // with the running snapshot.
        return Err(problems);
    }
    for h in &old.handlers {
        if !handler_index.contains_key(&*h.name) {
            summary.replaced.push(h.name.to_string());
        }
    }
    for slot in &slots {
        if summary.built.iter().any(|b| **b == *slot.name) && old.handler(&slot.name).is_some() {
            summary.replaced.push(slot.name.to_string());
        }
    }
    summary.replaced.sort();

    // Routes.
    let mut pair_ids: [HashMap<(u32, u32), u32>; 3] = Default::default();
    let mut compiled_rules = Vec::with_capacity(rules.len());
    let mut per_rule: Vec<(String, [Vec<Pair>; 3])> = Vec::with_capacity(rules.len());
    for rule in rules {
        let mut pairs: [Vec<Pair>; 3] = Default::default();
        for action in &rule.actions {
            let Some(&h) = handler_index.get(&action.handler) else {
                continue;
            };
            for inst in &action.instances {
                let Some(&i) = instance_index.get(inst) else {
                    continue;
                };
                let v = variety_index(compiled[i as usize].template.variety());
                let next = pair_ids[v].len() as u32;
                let id = *pair_ids[v].entry((h, i)).or_insert(next);
                pairs[v].push(Pair {
                    handler: h,
                    instance: i,
                    id,
                });
            }
        }
        per_rule.push((rule.namespace().to_string(), pairs));
        compiled_rules.push(CompiledRule {
            name: Arc::from(rule.name.to_string()),
            condition: rule.condition,
        });
    }
    let routes_for = |ns: Option<&str>| {
        let mut r = Routes::default();
        for (idx, (rule_ns, pairs)) in per_rule.iter().enumerate() {
            if *rule_ns != default_namespace && Some(rule_ns.as_str()) != ns {
                continue;
            }
            for (v, list) in [&mut r.check, &mut r.quota, &mut r.report]
                .into_iter()
                .enumerate()
            {
                if !pairs[v].is_empty() {
                    list.push(Route {
                        rule: idx as u32,
                        pairs: pairs[v].clone(),
                    });
                }
            }
        }
        r
    };
    let mut namespaces = HashMap::new();
    for (ns, _) in &per_rule {
        if *ns != default_namespace && !namespaces.contains_key(ns.as_str()) {
            namespaces.insert(Box::from(ns.as_str()), routes_for(Some(ns)));
        }
    }
    let default_routes = routes_for(None);
    let snapshot = Snapshot {
        generation: ctx.generation,
        handlers: slots,
        instances: compiled,
        rules: compiled_rules,
        namespaces,
        default_routes,
        pair_counts: [pair_ids[0].len(), pair_ids[1].len(), pair_ids[2].len()],
    };
    Ok((snapshot, summary))
}

pub(crate) fn validate(
    registry: &Registry,
    adapter: &str,
    params: &Params,
) -> Result<Box<dyn mixer_adapters::HandlerBuilder>, AdapterError> {
    match catch_unwind(AssertUnwindSafe(|| registry.validate(adapter, params))) {
        Ok(r) => r,
        Err(p) => Err(AdapterError::Internal(format!(
            "adapter panicked while validating params: {}",
            panic_message(&*p)
        ))),
    }
}

/// An adapter's complaint, each field error located at its field's line
/// under the handler's params (`spec.params` or, for the per-adapter
/// kinds, `spec`).
pub(crate) fn adapter_problems(e: &AdapterError, handler: &Handler) -> Vec<Problem> {
    config_problems(e, handler)
        .iter()
        .map(Problem::from_config)
        .collect()
}

/// [`adapter_problems`] as the configuration crate's problems, which keep
/// the expression carets and lines a tool prints.
pub(crate) fn config_problems(e: &AdapterError, handler: &Handler) -> Vec<mixer_config::Problem> {
    let fields = e.field_errors();
    if fields.is_empty() {
        return vec![mixer_config::Problem {
            origin: Some(handler.origin.clone()),
            subject: Some(mixer_config::model::Subject {
                category: mixer_config::model::Category::Handler,
                name: Some(handler.name.clone()),
            }),
            field: None,
            error: mixer_config::Error::Params {
                message: e.to_string(),
            },
        }];
    }
    fields
        .iter()
        .map(|f| handler.params_problem(&f.path, f.message.clone()))
        .collect()
}
