//! Turns a job stream into the job spec `kiln submit` would read, and has
//! kiln-core validate it, so a layer's `cores`, `memory`, `frames` or
//! `depends` mean exactly what they mean in a real spec; errors are charged
//! to the stream's fields.

use crate::error::{Error, Result};
use crate::scenario::JobStream;
use kiln_core::spec::{parse_and_validate, Format, NewJob, SubmitContext};

/// The most frames all of a scenario's jobs may hold together.
pub(crate) const MAX_FRAMES: u64 = 20_000_000;

/// The validated job `n` (from 1) of stream `i`, as `kiln submit` would
/// read it; errors name the scenario's field.
pub(crate) fn job_spec(i: usize, s: &JobStream, n: u32) -> Result<NewJob> {
    let mut layers = Vec::new();
    for (j, l) in s.layers.iter().enumerate() {
        let frames = match l.frames.trim().parse::<u64>() {
            Ok(0) => {
                return Err(Error::field(
                    format!("jobs[{i}].layers[{j}].frames"),
                    "is 0; give a count of at least 1 or a frame set like 1-100",
                ))
            }
            Ok(1) => "1".to_owned(),
            Ok(c) => format!("1-{c}"),
            Err(_) => l.frames.clone(),
        };
        let mut m = serde_json::Map::new();
        m.insert("name".into(), l.name.clone().into());
        m.insert("command".into(), "kiln-sim".into());
        m.insert("frames".into(), frames.into());
        let mut put = |k: &str, v: Option<serde_json::Value>| {
            if let Some(v) = v {
                m.insert(k.into(), v);
            }
        };
        // Memory goes in KiB so nothing is rounded on the way.
        let kb = |m: crate::units::Mem| serde_json::Value::from(format!("{}K", m.0));
        put("chunk", l.chunk.map(Into::into));
        put("service", l.service.clone().map(Into::into));
        put("cores", l.cores.clone().map(Into::into));
        put("memory", l.memory.map(kb));
        put("gpus", l.gpus.map(Into::into));
        put("gpu_memory", l.gpu_memory.map(kb));
        put("tags", (!l.tags.is_empty()).then(|| l.tags.clone().into()));
        put(
            "limits",
            (!l.limits.is_empty()).then(|| l.limits.clone().into()),
        );
        put("depends", Some(l.depends.clone().into()));
        put("retries", l.retries.map(Into::into));
        layers.push(serde_json::Value::Object(m));
    }
    let mut spec = serde_json::json!({
        "name": format!("{}-{n}", s.name),
        "show": s.show,
        "facility": s.facility,
        "user": "sim",
        "layers": layers,
    });
    if let Some(p) = s.priority {
        spec["priority"] = p.into();
    }
    if let Some(m) = &s.max_cores {
        spec["max_cores"] = m.clone().into();
    }
    let ctx = SubmitContext {
        user: "sim".into(),
        max_frames_per_layer: MAX_FRAMES as usize,
        max_frames_per_job: MAX_FRAMES as usize,
        // Scenarios are trusted: only the per-layer and task limits apply.
        max_job_frames: usize::MAX,
        ..SubmitContext::default()
    };
    parse_and_validate(&spec.to_string(), Format::Json, &ctx).map_err(|e| match e {
        kiln_core::Error::Spec { field, message } if field == "spec" => {
            Error::field(format!("jobs[{i}]"), message)
        }
        kiln_core::Error::Spec { field, message } => {
            Error::field(format!("jobs[{i}].{field}"), message)
        }
        other => Error::field(format!("jobs[{i}]"), other.to_string()),
    })
}
