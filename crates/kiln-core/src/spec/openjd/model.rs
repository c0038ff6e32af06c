//! The Open Job Description 2023-09 job template, as serde reads it: the
//! fields of the specification's schema, nothing more (unknown fields are
//! errors, as the specification requires).

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Template {
    pub specification_version: String,
    #[serde(default)]
    pub extensions: Vec<String>,
    /// A format string over `Param.*` and `RawParam.*`.
    pub name: String,
    #[serde(default)]
    #[allow(dead_code)] // part of the schema; nothing in Kiln shows it
    pub description: Option<String>,
    #[serde(default)]
    pub parameter_definitions: Vec<ParamDef>,
    #[serde(default)]
    pub job_environments: Vec<Environment>,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ParamDef {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    #[allow(dead_code)] // part of the schema; nothing in Kiln shows it
    pub description: Option<String>,
    #[serde(default)]
    pub default: Option<Value>,
    #[serde(default)]
    pub allowed_values: Option<Vec<Value>>,
    #[serde(default)]
    pub min_value: Option<Value>,
    #[serde(default)]
    pub max_value: Option<Value>,
    #[serde(default)]
    pub min_length: Option<Value>,
    #[serde(default)]
    pub max_length: Option<Value>,
    /// PATH only; Kiln does no transfers, so only checked for its values.
    #[serde(default)]
    pub object_type: Option<String>,
    #[serde(default)]
    pub data_flow: Option<String>,
    /// For submitter UIs; Kiln reads and ignores it.
    #[serde(default)]
    #[allow(dead_code)]
    pub user_interface: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Step {
    pub name: String,
    #[serde(default)]
    #[allow(dead_code)] // part of the schema; nothing in Kiln shows it
    pub description: Option<String>,
    #[serde(default)]
    pub parameter_space: Option<ParamSpace>,
    #[serde(default)]
    pub step_environments: Vec<Environment>,
    pub script: StepScript,
    #[serde(default)]
    pub dependencies: Vec<Dependency>,
    #[serde(default)]
    pub host_requirements: Option<HostRequirements>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Dependency {
    pub depends_on: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ParamSpace {
    pub task_parameter_definitions: Vec<TaskParamDef>,
    #[serde(default)]
    pub combination: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TaskParamDef {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// A list of values, or (INT) a range expression such as `1-100:2`.
    pub range: Value,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StepScript {
    pub actions: StepActions,
    #[serde(default)]
    pub embedded_files: Vec<EmbeddedFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StepActions {
    pub on_run: Action,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Environment {
    pub name: String,
    #[serde(default)]
    #[allow(dead_code)] // part of the schema; nothing in Kiln shows it
    pub description: Option<String>,
    #[serde(default)]
    pub script: Option<EnvScript>,
    /// Values are format strings, resolved on the host.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvScript {
    pub actions: EnvActions,
    #[serde(default)]
    pub embedded_files: Vec<EmbeddedFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EnvActions {
    #[serde(default)]
    pub on_enter: Option<Action>,
    #[serde(default)]
    pub on_exit: Option<Action>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Action {
    pub command: String,
    #[serde(default)]
    pub args: Vec<Value>,
    #[serde(default)]
    pub timeout: Option<Value>,
    #[serde(default)]
    pub cancelation: Option<Cancelation>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Cancelation {
    pub mode: String,
    #[serde(default)]
    pub notify_period_in_seconds: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EmbeddedFile {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub filename: Option<String>,
    #[serde(default)]
    pub runnable: bool,
    pub data: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HostRequirements {
    #[serde(default)]
    pub amounts: Vec<Amount>,
    #[serde(default)]
    pub attributes: Vec<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Amount {
    pub name: String,
    #[serde(default)]
    pub min: Option<Value>,
    /// Kiln reserves at least `min`; it has no way to cap what a host has.
    #[serde(default)]
    #[allow(dead_code)]
    pub max: Option<Value>,
}
