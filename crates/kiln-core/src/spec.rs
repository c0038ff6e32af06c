//! Job specs: the YAML or JSON a user submits, read into a [`JobSpec`] and
//! checked into a [`NewJob`] the farm can accept as it is.
//!
//! Every error is an [`Error::Spec`] whose field is a path such as
//! `layers[1].frames`, so a user can find the line to fix.

mod check;
pub mod openjd;
mod read;

use crate::error::{Error, Result};
use crate::frameset::Frames;
use crate::model::{Centicores, Command, CoreRequest, LayerDep, Resources, TagReq};
use crate::structure::Service;
use check::{
    check_depends, check_env, check_job_frames, check_name, check_range, resolve_cwd,
    validate_layer,
};
use read::read_error;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const MAX_LAYERS: usize = 1000;
const MAX_NAME: usize = 128;
const MAX_PRIORITY: i64 = 1_000_000;
const MAX_CHUNK: i64 = 1_000_000;
const MAX_MEMORY_KB: u64 = 16 << 30;
const MAX_GPUS: i64 = 64;
const MAX_RETRIES: i64 = 100;
/// What a YAML spec may expand to, aliases followed (one per value and one
/// per byte of text): this many times its own length, plus a little for
/// the smallest specs. Plain YAML stays under 1 times its length.
const YAML_BUDGET_PER_BYTE: u64 = 4;
const YAML_BUDGET_BASE: u64 = 64 << 10;
const NAME_RULE: &str = "use 1-128 letters, digits, '.', '_' or '-'";

/// The syntax of a spec's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
    /// JSON if the first non-space character is `{`, else YAML.
    Auto,
}

/// What validation needs to know beyond the spec itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitContext {
    /// The user a job belongs to when its spec names none.
    pub user: String,
    /// The absolute directory of the spec file; relative `cwd` values are
    /// joined to it. `None` when the spec did not come from a file.
    pub base_dir: Option<String>,
    pub max_frames_per_layer: usize,
    /// The most tasks (chunks) one job may have over all its layers.
    pub max_frames_per_job: usize,
    /// The most frames (repeats counted, however chunked) one job may have
    /// over all its layers. Counted before any set is expanded, it bounds
    /// the work of reading a spec.
    pub max_job_frames: usize,
}

impl Default for SubmitContext {
    fn default() -> Self {
        SubmitContext {
            user: "unknown".into(),
            base_dir: None,
            max_frames_per_layer: 1_000_000,
            max_frames_per_job: 1_000_000,
            max_job_frames: 2_000_000,
        }
    }
}

/// A job spec as written, defaults filled in, not yet validated.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a job spec: a map with at least `name` and `layers`"
)]
pub struct JobSpec {
    pub name: String,
    #[serde(default = "default_group")]
    pub show: String,
    #[serde(default = "default_group")]
    pub shot: String,
    #[serde(default = "default_facility")]
    pub facility: String,
    #[serde(default)]
    pub user: Option<String>,
    /// `None`: the show's default priority.
    #[serde(default, deserialize_with = "read::opt_int")]
    pub priority: Option<i64>,
    /// The most cores the job may hold at once; `None`: the show's default.
    #[serde(default, deserialize_with = "read::opt_loose_text")]
    pub max_cores: Option<String>,
    #[serde(default, deserialize_with = "read::env_map")]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub paused: bool,
    #[serde(default)]
    pub cwd: Option<String>,
    /// Jobs, by name or id, that must finish first.
    #[serde(default, deserialize_with = "read::text_list")]
    pub depends: Vec<String>,
    pub layers: Vec<LayerSpec>,
}

/// One layer of a [`JobSpec`], as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a layer: a map with at least `name`, `command` and `frames`"
)]
pub struct LayerSpec {
    pub name: String,
    #[serde(deserialize_with = "read::command")]
    pub command: Command,
    #[serde(deserialize_with = "read::text")]
    pub frames: String,
    #[serde(default = "default_one", deserialize_with = "read::int")]
    pub chunk: i64,
    /// Fields left out here come from the service, then Kiln's defaults.
    #[serde(default, deserialize_with = "read::opt_text")]
    pub service: Option<String>,
    /// `4`, `0.5`, `4+`, `2-8` or `all`.
    #[serde(default, deserialize_with = "read::opt_loose_text")]
    pub cores: Option<String>,
    #[serde(default, deserialize_with = "read::opt_text")]
    pub memory: Option<String>,
    #[serde(default, deserialize_with = "read::opt_int")]
    pub gpus: Option<i64>,
    #[serde(default, deserialize_with = "read::opt_text")]
    pub gpu_memory: Option<String>,
    #[serde(default, deserialize_with = "read::opt_text")]
    pub scratch: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Limits (licenses) each running frame takes one of.
    #[serde(default)]
    pub limits: Option<Vec<String>>,
    #[serde(default, deserialize_with = "read::env_map")]
    pub env: BTreeMap<String, String>,
    #[serde(default = "default_retries", deserialize_with = "read::int")]
    pub retries: i64,
    #[serde(default, deserialize_with = "read::opt_text")]
    pub timeout: Option<String>,
    #[serde(default, deserialize_with = "read::layer_deps")]
    pub depends: Vec<LayerDep>,
    #[serde(default)]
    pub cwd: Option<String>,
    /// Images each frame writes, with tokens: `out/beauty.#ZFRAME#.exr`.
    #[serde(default)]
    pub outputs: Vec<String>,
    /// `flag` (the default) or `fail`: what a bad output does to its frame.
    #[serde(default, deserialize_with = "read::opt_text")]
    pub bad_outputs: Option<String>,
}

fn default_group() -> String {
    "default".into()
}
fn default_facility() -> String {
    "local".into()
}
fn default_one() -> i64 {
    1
}
fn default_retries() -> i64 {
    3
}

/// A validated job, ready for the farm to give ids to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewJob {
    pub name: String,
    pub facility: String,
    pub show: String,
    pub shot: String,
    pub user: String,
    /// `None`: the show's default.
    pub priority: Option<i32>,
    pub max_cores: Option<Centicores>,
    pub env: BTreeMap<String, String>,
    pub paused: bool,
    pub depends: Vec<String>,
    pub layers: Vec<NewLayer>,
    /// The submitter's idempotency key (not part of the spec: the API sets
    /// it from the request). See [`crate::model::Job::submit_key`].
    pub submit_key: Option<String>,
}

/// A validated layer. Its tasks are counted, not cut: the farm cuts them
/// from the frame set when it creates the job ([`NewLayer::frame_set`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewLayer {
    pub name: String,
    pub command: Command,
    /// The frame set as written, trimmed.
    pub frames: String,
    pub chunk: u32,
    /// What the spec asked for; `None` fields come from the service or
    /// Kiln's defaults when the farm accepts the job (see [`Asked::resolve`]).
    pub asked: Asked,
    pub env: BTreeMap<String, String>,
    pub retries: u32,
    pub depends: Vec<LayerDep>,
    /// Absolute; the layer's own or the job's.
    pub cwd: Option<String>,
    /// How many tasks the frames make in chunks of `chunk`.
    pub tasks: u32,
    pub outputs: Vec<String>,
    pub bad_outputs: crate::output::BadOutputs,
}

impl NewLayer {
    /// The layer's frame set, read again from its text: its ranges, nothing
    /// expanded. Fails only for a layer [`validate`] did not make.
    pub fn frame_set(&self) -> std::result::Result<Frames, String> {
        Frames::parse(&self.frames, usize::MAX)
    }
}

/// Reads a spec without checking it beyond its shape.
pub fn parse(text: &str, format: Format) -> Result<JobSpec> {
    if text.trim().is_empty() {
        return Err(Error::spec(
            "spec",
            "the spec is empty; a job needs a name and layers",
        ));
    }
    let json = match format {
        Format::Json => true,
        Format::Yaml => false,
        Format::Auto => text.trim_start().starts_with('{'),
    };
    if json {
        let mut de = serde_json::Deserializer::from_str(text);
        let spec = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let syntax = !e.inner().is_data();
            read_error(e.path(), e.inner().to_string(), syntax)
        })?;
        de.end().map_err(|e| Error::spec("spec", e.to_string()))?;
        Ok(spec)
    } else {
        // The YAML reader finds some syntax errors only when it reaches them,
        // mid-way into a field; reading the text once first, keeping
        // nothing, tells syntax errors apart from errors in the spec's
        // content. That read also bounds what aliases expand to, before
        // anything is built from them.
        let budget = YAML_BUDGET_PER_BYTE * text.len() as u64 + YAML_BUDGET_BASE;
        match read::yaml_within(text, budget) {
            Ok(true) => {}
            Ok(false) => {
                return Err(Error::spec(
                    "spec",
                    format!(
                        "its YAML aliases (*name) expand to more than {budget} values and \
                         characters, {YAML_BUDGET_PER_BYTE} times the text: write the \
                         repeated parts out, or use fewer aliases"
                    ),
                ))
            }
            Err(e) => return Err(Error::spec("spec", e.to_string())),
        }
        let de = serde_norway::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de)
            .map_err(|e| read_error(e.path(), e.inner().to_string(), false))
    }
}

/// Reads and checks a spec in one step.
pub fn parse_and_validate(text: &str, format: Format, ctx: &SubmitContext) -> Result<NewJob> {
    validate(parse(text, format)?, ctx)
}

/// Reads and checks a Kiln spec or an OpenJD job template (told apart by
/// its `specificationVersion`); `params` are the template's parameter
/// values (and Kiln's `kiln.*` extras), and must be empty for a Kiln spec.
pub fn parse_and_validate_with(
    text: &str,
    format: Format,
    params: &BTreeMap<String, String>,
    ctx: &SubmitContext,
) -> Result<NewJob> {
    if openjd::is_template(text) {
        return openjd::convert(text, params, ctx);
    }
    if let Some(k) = params.keys().next() {
        return Err(Error::spec(
            format!("parameter {k}"),
            "parameters apply only to OpenJD job templates (specificationVersion: \
             jobtemplate-2023-09); a Kiln spec takes none",
        ));
    }
    parse_and_validate(text, format, ctx)
}

/// Checks a whole spec and builds the job; the first problem found is
/// returned and nothing else.
pub fn validate(spec: JobSpec, ctx: &SubmitContext) -> Result<NewJob> {
    check_name("name", &spec.name)?;
    check_name("show", &spec.show)?;
    check_name("shot", &spec.shot)?;
    check_name("facility", &spec.facility)?;
    let user = match spec.user {
        Some(u) => {
            if u.is_empty()
                || u.len() > MAX_NAME
                || u.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(Error::spec(
                    "user",
                    format!("{u:?} is not a user name; give 1-128 characters without spaces"),
                ));
            }
            u
        }
        None => ctx.user.clone(),
    };
    if let Some(p) = spec.priority {
        check_range("priority", p, 0, MAX_PRIORITY)?;
    }
    let max_cores = match &spec.max_cores {
        None => None,
        Some(t) => match t.trim().parse::<f64>() {
            Ok(v) if (0.01..=10_000_000.0).contains(&v) => Some((v * 100.0).round() as Centicores),
            _ => {
                return Err(Error::spec(
                    "max_cores",
                    format!(
                    "{t:?} is not a number of cores; give one number of at least 0.01, like 100"
                ),
                ))
            }
        },
    };
    check_env("env", &spec.env)?;
    let job_cwd = match &spec.cwd {
        Some(c) => Some(resolve_cwd("cwd", c, ctx)?),
        None => None,
    };
    let mut depends = Vec::with_capacity(spec.depends.len());
    for (i, d) in spec.depends.iter().enumerate() {
        let d = d.trim();
        if d.is_empty() {
            return Err(Error::spec(
                format!("depends[{i}]"),
                "is empty; name a job by its name or id",
            ));
        }
        depends.push(d.to_owned());
    }
    if spec.layers.is_empty() {
        return Err(Error::spec(
            "layers",
            "is empty; a job needs at least one layer",
        ));
    }
    if spec.layers.len() > MAX_LAYERS {
        let n = spec.layers.len();
        return Err(Error::spec(
            "layers",
            format!("has {n} layers; a job may have at most {MAX_LAYERS}"),
        ));
    }
    check_job_frames(&spec.layers, ctx)?;
    let mut layers: Vec<NewLayer> = Vec::with_capacity(spec.layers.len());
    let mut job_tasks = 0;
    for (i, layer) in spec.layers.into_iter().enumerate() {
        if let Some(k) = layers.iter().position(|l| l.name == layer.name) {
            return Err(Error::spec(
                format!("layers[{i}].name"),
                format!(
                    "{:?} is already the name of layers[{k}]; layer names must be unique in a job",
                    layer.name
                ),
            ));
        }
        layers.push(validate_layer(
            i,
            layer,
            ctx,
            job_cwd.as_deref(),
            &mut job_tasks,
        )?);
    }
    check_depends(&layers)?;
    Ok(NewJob {
        name: spec.name,
        facility: spec.facility,
        show: spec.show,
        shot: spec.shot,
        user,
        priority: spec.priority.map(|p| p as i32),
        max_cores,
        env: spec.env,
        paused: spec.paused,
        depends,
        layers,
        submit_key: None,
    })
}

/// A layer's resource fields as the spec gave them, each `None` when left
/// out. Resolved against the layer's service when the farm accepts the job.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Asked {
    pub service: Option<String>,
    pub cores: Option<CoreRequest>,
    pub memory_kb: Option<u64>,
    pub gpus: Option<u32>,
    pub gpu_memory_kb: Option<u64>,
    pub scratch_kb: Option<u64>,
    pub tags: Option<Vec<TagReq>>,
    pub timeout_s: Option<u64>,
    pub limits: Option<Vec<String>>,
}

/// A layer's resources once the spec, its service and Kiln's defaults are
/// taken together, in that order of precedence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub resources: Resources,
    pub cores: CoreRequest,
    pub tags: Vec<TagReq>,
    pub timeout_s: Option<u64>,
    pub limits: Vec<String>,
}

/// Kiln's own layer defaults, under any service.
pub const DEFAULT_CORES: CoreRequest = CoreRequest::Exact(100);
pub const DEFAULT_MEMORY_KB: u64 = 1 << 20;

impl Asked {
    /// Fills the gaps from `services`, most specific first (the show's
    /// override, then the farm-wide service), then Kiln's defaults.
    pub fn resolve(&self, services: &[&Service]) -> Resolved {
        fn pick<T: Clone>(
            own: &Option<T>,
            services: &[&Service],
            f: impl Fn(&Service) -> &Option<T>,
        ) -> Option<T> {
            own.clone()
                .or_else(|| services.iter().find_map(|s| f(s).clone()))
        }
        let cores = pick(&self.cores, services, |s| &s.cores).unwrap_or(DEFAULT_CORES);
        let gpus = pick(&self.gpus, services, |s| &s.gpus).unwrap_or(0);
        Resolved {
            resources: Resources {
                cores: cores.min(),
                memory_kb: pick(&self.memory_kb, services, |s| &s.memory_kb)
                    .unwrap_or(DEFAULT_MEMORY_KB),
                gpus,
                gpu_memory_kb: pick(&self.gpu_memory_kb, services, |s| &s.gpu_memory_kb)
                    .unwrap_or(0),
                scratch_kb: self.scratch_kb.unwrap_or(0),
            },
            cores,
            tags: pick(&self.tags, services, |s| &s.tags).unwrap_or_default(),
            timeout_s: pick(&self.timeout_s, services, |s| &s.timeout_s),
            limits: pick(&self.limits, services, |s| &s.limits).unwrap_or_default(),
        }
    }
}
