//! Open Job Description (OpenJD 2023-09) job templates: a template and its
//! parameter values become the same [`NewJob`] a Kiln spec becomes. Steps
//! are layers, each task a frame (numbered from 1 in the order of the
//! parameter space), step dependencies layer dependencies; each frame runs
//! a generated bash script that is one OpenJD session (see `script`).
//! docs/openjd.md says what maps to what and what is not supported.

mod combination;
mod fmt;
mod model;
mod params;
mod script;
mod space;

use super::read::{read_error, yaml_within};
use super::{validate, JobSpec, LayerSpec, NewJob, SubmitContext};
use crate::error::{Error, Result};
use crate::model::{Command, LayerDep};
use model::{Step, Template};
use serde_json::Value;
use std::collections::BTreeMap;

pub use space::range_expr;

pub const VERSION: &str = "jobtemplate-2023-09";
/// Submit parameters under this prefix are Kiln's own (`kiln.show`,
/// `kiln.shot`, `kiln.priority`, `kiln.retries`), never a template's: an
/// OpenJD parameter name cannot contain a dot.
pub const KILN_PREFIX: &str = "kiln.";
const KILN_EXTRAS: [&str; 4] = ["show", "shot", "priority", "retries"];
const MAX_STEPS: usize = 1000;

/// Whether `text` looks like an OpenJD job template rather than a Kiln spec.
pub fn is_template(text: &str) -> bool {
    text.contains("specificationVersion") && text.contains(VERSION)
}

/// Reads a template (YAML or JSON) and makes the job, with `given`
/// holding the values of its parameters and Kiln's extras.
pub fn convert(
    text: &str,
    given: &BTreeMap<String, String>,
    ctx: &SubmitContext,
) -> Result<NewJob> {
    let t = read(text)?;
    if t.specification_version != VERSION {
        return Err(Error::spec(
            "specificationVersion",
            format!(
                "{:?} is not a version Kiln reads; use {VERSION:?}",
                t.specification_version
            ),
        ));
    }
    if let Some(e) = t.extensions.first() {
        return Err(Error::spec(
            "extensions",
            format!("Kiln supports no OpenJD extensions yet ({e:?} asked); remove `extensions` and what needs them"),
        ));
    }
    let mut extras = BTreeMap::new();
    let mut values = BTreeMap::new();
    for (k, v) in given {
        match k.strip_prefix(KILN_PREFIX) {
            Some(x) if KILN_EXTRAS.contains(&x) => {
                extras.insert(x, v.clone());
            }
            Some(_) => {
                return Err(Error::spec(
                    format!("parameter {k}"),
                    format!(
                        "is not one of Kiln's own settings ({})",
                        KILN_EXTRAS.map(|x| format!("{KILN_PREFIX}{x}")).join(", ")
                    ),
                ))
            }
            None => {
                values.insert(k.clone(), v.clone());
            }
        }
    }
    let params = params::resolve(&t.parameter_definitions, &values)?;
    let name = kiln_name(&fmt::resolve_now("name", &t.name, &params)?, "job");
    let int = |k: &str| -> Result<Option<i64>> {
        extras
            .get(k)
            .map(|v| {
                v.trim().parse::<i64>().map_err(|_| {
                    Error::spec(
                        format!("{KILN_PREFIX}{k}"),
                        format!("{v:?} is not a whole number"),
                    )
                })
            })
            .transpose()
    };
    let retries = int("retries")?.unwrap_or(3);
    if t.steps.is_empty() || t.steps.len() > MAX_STEPS {
        return Err(Error::spec(
            "steps",
            format!("has {} steps; give 1 to {MAX_STEPS}", t.steps.len()),
        ));
    }
    for (i, e) in t.job_environments.iter().enumerate() {
        check_env_name(
            &format!("jobEnvironments[{i}]"),
            &e.name,
            t.job_environments[..i].iter().map(|e| &e.name),
        )?;
    }
    let layer_names = layer_names(&t.steps)?;
    let mut layers = Vec::with_capacity(t.steps.len());
    for (i, step) in t.steps.iter().enumerate() {
        layers.push(layer(i, step, &t, &params, &layer_names, retries, ctx)?);
    }
    let spec = JobSpec {
        name,
        show: extras
            .get("show")
            .cloned()
            .unwrap_or_else(|| "default".into()),
        shot: extras
            .get("shot")
            .cloned()
            .unwrap_or_else(|| "default".into()),
        facility: "local".into(),
        user: None,
        priority: int("priority")?,
        max_cores: None,
        env: BTreeMap::new(),
        paused: false,
        cwd: None,
        depends: vec![],
        layers,
    };
    validate(spec, ctx).map_err(|e| match e {
        Error::Spec { field, message }
            if ["show", "shot", "priority"].contains(&field.as_str()) =>
        {
            Error::spec(format!("{KILN_PREFIX}{field}"), message)
        }
        e => e,
    })
}

fn read(text: &str) -> Result<Template> {
    let value: Value = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| Error::spec("template", e.to_string()))?
    } else {
        let budget = 4 * text.len() as u64 + (64 << 10);
        if !yaml_within(text, budget).map_err(|e| Error::spec("template", e.to_string()))? {
            return Err(Error::spec(
                "template",
                "its YAML aliases expand too far; write the repeated parts out",
            ));
        }
        serde_norway::from_str(text).map_err(|e| Error::spec("template", e.to_string()))?
    };
    serde_path_to_error::deserialize(value)
        .map_err(|e| read_error(e.path(), e.inner().to_string(), false))
}

/// A Kiln name (letters, digits, `.`, `_`, `-`, at most 128) for an OpenJD
/// name, which may hold spaces and more.
fn kiln_name(s: &str, empty: &str) -> String {
    let n: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(120)
        .collect();
    if n.is_empty() {
        empty.into()
    } else {
        n
    }
}

fn check_env_name<'a>(
    at: &str,
    name: &str,
    before: impl Iterator<Item = &'a String>,
) -> Result<()> {
    if name.is_empty() || name.chars().count() > 64 {
        return Err(Error::spec(
            format!("{at}.name"),
            "give an environment name of 1-64 characters",
        ));
    }
    for b in before {
        if b == name {
            return Err(Error::spec(
                format!("{at}.name"),
                format!("{name:?} names two environments; names must be unique"),
            ));
        }
    }
    Ok(())
}

/// Each step's layer name: its own made Kiln-safe, numbered if two meet.
fn layer_names(steps: &[Step]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        if s.name.is_empty() || s.name.chars().count() > 64 {
            return Err(Error::spec(
                format!("steps[{i}].name"),
                "give a step name of 1-64 characters",
            ));
        }
        if let Some(k) = steps[..i].iter().position(|o| o.name == s.name) {
            return Err(Error::spec(
                format!("steps[{i}].name"),
                format!(
                    "{:?} is also the name of steps[{k}]; step names must be unique",
                    s.name
                ),
            ));
        }
        let mut n = kiln_name(&s.name, "step");
        if out.contains(&n) {
            n = format!("{n}-{i}");
        }
        out.push(n);
    }
    Ok(out)
}

fn layer(
    i: usize,
    step: &Step,
    t: &Template,
    params: &BTreeMap<String, String>,
    names: &[String],
    retries: i64,
    ctx: &SubmitContext,
) -> Result<LayerSpec> {
    let at = format!("steps[{i}]");
    let mut depends = Vec::new();
    for (k, d) in step.dependencies.iter().enumerate() {
        let Some(j) = t.steps.iter().position(|s| s.name == d.depends_on) else {
            return Err(Error::spec(
                format!("{at}.dependencies[{k}].dependsOn"),
                format!(
                    "{:?} is not the name of a step of this template",
                    d.depends_on
                ),
            ));
        };
        if j == i {
            return Err(Error::spec(
                format!("{at}.dependencies[{k}].dependsOn"),
                "a step cannot depend on itself",
            ));
        }
        if depends.iter().any(|l: &LayerDep| l.layer == names[j]) {
            return Err(Error::spec(
                format!("{at}.dependencies[{k}].dependsOn"),
                format!("{:?} is named twice", d.depends_on),
            ));
        }
        depends.push(LayerDep {
            layer: names[j].clone(),
            per_frame: false,
        });
    }
    let tasks = space::expand(
        &at,
        step.parameter_space.as_ref(),
        params,
        ctx.max_frames_per_layer,
    )?;
    let mut script = script::Script::new(&tasks);
    for (k, e) in t.job_environments.iter().enumerate() {
        script.environment(&format!("jobEnvironments[{k}]"), e, params)?;
    }
    for (k, e) in step.step_environments.iter().enumerate() {
        let f = format!("{at}.stepEnvironments[{k}]");
        check_env_name(
            &f,
            &e.name,
            step.step_environments[..k].iter().map(|e| &e.name),
        )?;
        script.environment(&f, e, params)?;
    }
    let text = script.finish(
        &at,
        &step.script.actions.on_run,
        &step.script.embedded_files,
        params,
        &tasks.names,
    )?;
    let (cores, memory, gpus) = host_requirements(&at, step)?;
    Ok(LayerSpec {
        name: names[i].clone(),
        command: Command::Argv(vec![
            "/bin/bash".into(),
            "-c".into(),
            text,
            "openjd-session".into(),
            "#FRAME#".into(),
        ]),
        frames: format!("1-{}", tasks.count),
        chunk: 1,
        service: None,
        cores,
        memory,
        gpus,
        gpu_memory: None,
        scratch: None,
        tags: None,
        limits: None,
        env: BTreeMap::new(),
        retries,
        timeout: None,
        depends,
        cwd: None,
        outputs: Vec::new(),
        bad_outputs: None,
    })
}

type Asks = (Option<String>, Option<String>, Option<i64>);

/// The host requirements Kiln can honour: the minimum vCPUs, memory (MiB)
/// and GPUs, and a Linux OS family. Anything else is refused, since
/// running a task on a host that lacks what it asked for is worse.
fn host_requirements(at: &str, step: &Step) -> Result<Asks> {
    let mut asks: Asks = (None, None, None);
    let Some(h) = &step.host_requirements else {
        return Ok(asks);
    };
    for (k, a) in h.amounts.iter().enumerate() {
        let f = format!("{at}.hostRequirements.amounts[{k}]");
        let min = match &a.min {
            Some(v) => params::scalar(v)
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|m| *m >= 0.0)
                .ok_or_else(|| Error::spec(format!("{f}.min"), "must be a number of at least 0"))?,
            None => 0.0,
        };
        match a.name.as_str() {
            "amount.worker.vcpu" => asks.0 = Some(format!("{}+", min.max(0.01))),
            "amount.worker.memory" => asks.1 = Some(format!("{}M", min.ceil() as u64)),
            "amount.worker.gpu" => asks.2 = Some(min.ceil() as i64),
            n => return Err(Error::spec(format!("{f}.name"), format!("{n:?} is an amount Kiln cannot match; it knows amount.worker.vcpu, amount.worker.memory and amount.worker.gpu"))),
        }
    }
    for (k, a) in h.attributes.iter().enumerate() {
        let f = format!("{at}.hostRequirements.attributes[{k}]");
        let linux = a.get("name").and_then(Value::as_str) == Some("attr.worker.os.family")
            && ["anyOf", "allOf"].iter().any(|o| {
                a.get(*o).and_then(Value::as_array).is_some_and(|v| {
                    v.iter()
                        .any(|x| x.as_str().is_some_and(|s| s.eq_ignore_ascii_case("linux")))
                })
            });
        if !linux {
            return Err(Error::spec(f, "Kiln runs OpenJD tasks on Linux hosts only and matches no other attribute; only `attr.worker.os.family` with `linux` is accepted"));
        }
    }
    Ok(asks)
}

#[cfg(test)]
mod tests;
