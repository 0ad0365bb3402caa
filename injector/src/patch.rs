//! The pure decision: pod + settings -> patch, unchanged, or denial; and the JSON patch
//! (RFC 6902) operations that add the agent.

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation};
use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;
use serde_json::Value;

use crate::agent::{self, Role};
pub use crate::annotations::Denial;
use crate::annotations::{self, Request};
use crate::names;
use crate::plan::{self, Plan, Shape};
use crate::settings::Settings;
use crate::volumes;

/// What the webhook does with a pod.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Apply this JSON patch (RFC 6902).
    Patch(json_patch::Patch),
    /// Admit the pod as it is; the reason is for the log.
    Unchanged(&'static str),
}

/// Decide what to do with `pod`.
pub fn inject(pod: &Pod, settings: &Settings) -> Result<Outcome, Denial> {
    let a = match annotations::read(pod)? {
        Request::Skip(why) => return Ok(Outcome::Unchanged(why)),
        Request::Inject(a) => *a,
    };
    let Some(spec) = &pod.spec else {
        return Err(Denial::new(
            "agent-inject",
            "the pod has no spec to add the agent to",
        ));
    };
    let plan = plan::plan(a, spec, settings)?;
    Ok(Outcome::Patch(Patch(operations(pod, &plan))))
}

/// An `add` at the pointer made of `tokens` (each escaped: `/` as `~1`, `~` as `~0`).
fn add<T: Serialize>(tokens: &[&str], value: &T) -> PatchOperation {
    PatchOperation::Add(AddOperation {
        path: PointerBuf::from_tokens(tokens.iter().copied()),
        value: to_value(value),
    })
}

fn to_value<T: Serialize>(value: &T) -> Value {
    // The k8s-openapi types and plain values always serialise.
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Add `items` to the array at `tokens`: the whole array when the field is absent, else each
/// at the end (or, with `first`, at the front in order).
fn add_all<T: Serialize>(
    ops: &mut Vec<PatchOperation>,
    tokens: &[&str],
    present: bool,
    items: &[T],
    first: bool,
) {
    if !present {
        ops.push(add(tokens, &items));
        return;
    }
    for (i, item) in items.iter().enumerate() {
        let index = if first { i.to_string() } else { "-".into() };
        let mut path = tokens.to_vec();
        path.push(&index);
        ops.push(add(&path, item));
    }
}

/// The operations, in an order where every index still points where it was meant to: the
/// chosen containers' mounts before the agent is put in front of the init containers.
fn operations(pod: &Pod, plan: &Plan) -> Vec<PatchOperation> {
    let mut ops = Vec::new();
    let spec = pod.spec.as_ref();
    if pod.metadata.annotations.is_some() {
        ops.push(add(
            &["metadata", "annotations", annotations::STATUS],
            &names::INJECTED,
        ));
    } else {
        let marker = [(annotations::STATUS, names::INJECTED)];
        ops.push(add(
            &["metadata", "annotations"],
            &marker
                .into_iter()
                .collect::<std::collections::BTreeMap<_, _>>(),
        ));
    }
    let has_volumes = spec.is_some_and(|s| s.volumes.is_some());
    add_all(
        &mut ops,
        &["spec", "volumes"],
        has_volumes,
        &volumes::volumes(plan),
        false,
    );

    let mount = [volumes::app_mount(plan)];
    for t in &plan.targets {
        let (list, container) = match (t.init, spec) {
            (true, Some(s)) => (
                "initContainers",
                s.init_containers.as_ref().map(|v| &v[t.index]),
            ),
            (false, Some(s)) => ("containers", s.containers.get(t.index)),
            (_, None) => continue,
        };
        let has_mounts = container.is_some_and(|c| c.volume_mounts.is_some());
        let index = t.index.to_string();
        add_all(
            &mut ops,
            &["spec", list, &index, "volumeMounts"],
            has_mounts,
            &mount,
            false,
        );
    }

    let has_inits = spec.is_some_and(|s| s.init_containers.is_some());
    let first = match plan.shape {
        Shape::NativeSidecar => agent::container(plan, Role::NativeSidecar),
        Shape::PrePopulateOnly | Shape::LegacySidecar => agent::container(plan, Role::Once),
    };
    add_all(
        &mut ops,
        &["spec", "initContainers"],
        has_inits,
        &[first],
        true,
    );
    if plan.shape == Shape::LegacySidecar {
        let sidecar = agent::container(plan, Role::ClassicSidecar);
        ops.push(add(&["spec", "containers", "-"], &sidecar));
    }
    if plan.notify.is_some() {
        ops.push(add(&["spec", "shareProcessNamespace"], &true));
    }
    ops
}

#[cfg(test)]
mod tests;
