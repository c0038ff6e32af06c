//! Checking a read spec: names, ranges, paths, resources and the layer
//! dependency graph, each problem reported against its field.

use super::{
    Asked, LayerSpec, NewLayer, SubmitContext, MAX_CHUNK, MAX_GPUS, MAX_MEMORY_KB, MAX_NAME,
    MAX_RETRIES, NAME_RULE,
};
use crate::error::{Error, Result};
use crate::frameset::{FrameSet, Frames};
use crate::model::{Command, CoreRequest, TagReq};
use crate::size::{format_kb, parse_duration_s, parse_memory_kb};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

pub(super) fn check_name(field: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::spec(field, format!("is empty; {NAME_RULE}")));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if let Some(c) = value.chars().find(|&c| !allowed(c)) {
        return Err(Error::spec(
            field,
            format!("{value:?} contains {c:?}, which is not allowed; {NAME_RULE}"),
        ));
    }
    // Names end up in paths; `.` and `..` would walk the tree.
    if value == "." || value == ".." {
        return Err(Error::spec(
            field,
            format!("{value:?} is not a usable name; {NAME_RULE}"),
        ));
    }
    if value.len() > MAX_NAME {
        let n = value.len();
        return Err(Error::spec(
            field,
            format!("is {n} characters long; {NAME_RULE}"),
        ));
    }
    Ok(())
}

pub(super) fn check_range(field: &str, value: i64, lo: i64, hi: i64) -> Result<()> {
    if (lo..=hi).contains(&value) {
        return Ok(());
    }
    Err(Error::spec(
        field,
        format!("{value} is out of range; give a whole number from {lo} to {hi}"),
    ))
}

pub(super) fn check_env(field: &str, env: &BTreeMap<String, String>) -> Result<()> {
    for (key, value) in env {
        if key.is_empty() {
            return Err(Error::spec(
                field,
                "has an empty variable name; give each variable a name",
            ));
        }
        if key.contains(['=', '\0']) {
            return Err(Error::spec(
                field,
                format!("{key:?} is not a valid variable name; names may not contain '=' or NUL"),
            ));
        }
        if value.contains('\0') {
            return Err(Error::spec(
                format!("{field}.{key}"),
                "contains a NUL character; remove it",
            ));
        }
    }
    Ok(())
}

fn check_command(field: &str, cmd: &Command) -> Result<()> {
    match cmd {
        Command::Shell(s) if s.trim().is_empty() => Err(Error::spec(
            field,
            "is empty; give a command such as \"render -f #FRAME#\"",
        )),
        Command::Shell(s) if s.contains('\0') => {
            Err(Error::spec(field, "contains a NUL character; remove it"))
        }
        Command::Argv(args) if args.first().is_none_or(|a| a.is_empty()) => Err(Error::spec(
            field,
            "needs a program as its first argument, like [render, -f, \"#FRAME#\"]",
        )),
        Command::Argv(args) => match args.iter().position(|a| a.contains('\0')) {
            Some(j) => Err(Error::spec(
                format!("{field}[{j}]"),
                "contains a NUL character; remove it",
            )),
            None => Ok(()),
        },
        Command::Shell(_) => Ok(()),
    }
}

/// Makes a working directory absolute, by text alone.
pub(super) fn resolve_cwd(field: &str, value: &str, ctx: &SubmitContext) -> Result<String> {
    if value.trim().is_empty() || value.contains('\0') {
        return Err(Error::spec(
            field,
            "is not a directory; give an absolute path or leave it out",
        ));
    }
    let path = Path::new(value);
    let joined = match (&ctx.base_dir, path.is_absolute()) {
        (_, true) => path.to_path_buf(),
        (Some(base), false) => Path::new(base).join(path),
        (None, false) => PathBuf::new(),
    };
    if !joined.is_absolute() {
        return Err(Error::spec(
            field,
            format!("{value:?} is relative and there is no spec file to resolve it against; give an absolute path such as /shows/myshow"),
        ));
    }
    Ok(joined
        .components()
        .collect::<PathBuf>()
        .to_string_lossy()
        .into_owned())
}

fn check_tags(field: &str, tags: &[String]) -> Result<Vec<TagReq>> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-');
    let mut reqs = Vec::with_capacity(tags.len());
    for (j, tag) in tags.iter().enumerate() {
        let mut any_of = Vec::new();
        for part in tag.split('|').map(str::trim) {
            if part.is_empty() || !part.chars().all(allowed) {
                return Err(Error::spec(
                    format!("{field}[{j}]"),
                    format!("{tag:?} is not a tag requirement; a tag is letters, digits, '.', '_', ':' or '-', and \"a|b\" asks for either"),
                ));
            }
            if !any_of.iter().any(|t| t == part) {
                any_of.push(part.to_owned());
            }
        }
        reqs.push(TagReq { any_of });
    }
    Ok(reqs)
}

fn check_asked(i: usize, layer: &LayerSpec, timeout_s: Option<u64>) -> Result<Asked> {
    let field = |name: &str| format!("layers[{i}].{name}");
    let cores = match &layer.cores {
        None => None,
        Some(t) => Some(CoreRequest::parse(t).map_err(|m| Error::spec(field("cores"), m))?),
    };
    let size = |name: &str, text: &Option<String>| -> Result<Option<u64>> {
        let Some(text) = text else { return Ok(None) };
        let field = field(name);
        let kb = parse_memory_kb(text).map_err(|m| Error::spec(&field, m))?;
        if kb > MAX_MEMORY_KB {
            let max = format_kb(MAX_MEMORY_KB);
            return Err(Error::spec(
                field,
                format!(
                    "{:?} is more than {max}, the most a layer may ask for",
                    text.trim()
                ),
            ));
        }
        Ok(Some(kb))
    };
    let gpus = match layer.gpus {
        None => None,
        Some(g) => {
            check_range(&field("gpus"), g, 0, MAX_GPUS)?;
            Some(g as u32)
        }
    };
    let tags = match &layer.tags {
        None => None,
        Some(t) => Some(check_tags(&field("tags"), t)?),
    };
    let limits = match &layer.limits {
        None => None,
        Some(list) => {
            let mut out: Vec<String> = Vec::with_capacity(list.len());
            for (j, name) in list.iter().enumerate() {
                check_name(&format!("layers[{i}].limits[{j}]"), name)?;
                if !out.contains(name) {
                    out.push(name.clone());
                }
            }
            Some(out)
        }
    };
    if let Some(s) = &layer.service {
        check_name(&field("service"), s)?;
    }
    Ok(Asked {
        service: layer.service.clone(),
        cores,
        memory_kb: size("memory", &layer.memory)?,
        gpus,
        gpu_memory_kb: size("gpu_memory", &layer.gpu_memory)?,
        scratch_kb: size("scratch", &layer.scratch)?,
        tags,
        timeout_s,
        limits,
    })
}

/// Counts the frames of every layer against the job's limit before any
/// set is expanded, so sixty layers of a million frames each cost no more
/// than reading their text. A set that does not parse is left for its
/// layer's own check to report.
pub(super) fn check_job_frames(layers: &[LayerSpec], ctx: &SubmitContext) -> Result<()> {
    let mut total: u64 = 0;
    for (i, layer) in layers.iter().enumerate() {
        let frames = layer.frames.trim();
        let Ok(n) = FrameSet::count(frames, ctx.max_frames_per_layer) else {
            continue;
        };
        total += n;
        if total > ctx.max_job_frames as u64 {
            return Err(Error::spec(
                format!("layers[{i}].frames"),
                format!(
                    "{frames:?} brings the job to {total} frames; a job may have at most {} \
                     over all its layers (split it into several jobs)",
                    ctx.max_job_frames
                ),
            ));
        }
    }
    Ok(())
}

pub(super) fn validate_layer(
    i: usize,
    layer: LayerSpec,
    ctx: &SubmitContext,
    job_cwd: Option<&str>,
    job_tasks: &mut usize,
) -> Result<NewLayer> {
    let field = |name: &str| format!("layers[{i}].{name}");
    check_name(&field("name"), &layer.name)?;
    check_command(&field("command"), &layer.command)?;
    check_range(&field("chunk"), layer.chunk, 1, MAX_CHUNK)?;
    let frames = layer.frames.trim().to_owned();
    // Read into its ranges and sized, never expanded: the tasks are cut
    // where the farm creates the job.
    let set = Frames::parse(&frames, ctx.max_frames_per_layer)
        .map_err(|m| Error::spec(field("frames"), m))?;
    let tasks = set.task_count(layer.chunk as u32) as usize;
    *job_tasks += tasks;
    if *job_tasks > ctx.max_frames_per_job {
        return Err(Error::spec(
            field("frames"),
            format!(
                "{frames:?} brings the job to {} tasks; a job may have at most {} (use a larger chunk or fewer frames)",
                job_tasks, ctx.max_frames_per_job
            ),
        ));
    }
    check_env(&field("env"), &layer.env)?;
    check_range(&field("retries"), layer.retries, 0, MAX_RETRIES)?;
    let timeout_s = match &layer.timeout {
        None => None,
        Some(t) => match parse_duration_s(t) {
            Ok(0) => {
                let msg = "must be more than 0; leave timeout out for no limit";
                return Err(Error::spec(field("timeout"), msg));
            }
            Ok(s) => Some(s),
            Err(m) => return Err(Error::spec(field("timeout"), m)),
        },
    };
    let asked = check_asked(i, &layer, timeout_s)?;
    let cwd = match &layer.cwd {
        Some(c) => Some(resolve_cwd(&field("cwd"), c, ctx)?),
        None => job_cwd.map(str::to_owned),
    };
    if layer.outputs.len() > crate::output::MAX_OUTPUTS {
        return Err(Error::spec(
            field("outputs"),
            format!(
                "lists {} outputs; a layer may declare at most {}",
                layer.outputs.len(),
                crate::output::MAX_OUTPUTS
            ),
        ));
    }
    for (k, p) in layer.outputs.iter().enumerate() {
        crate::output::check_path(&field(&format!("outputs[{k}]")), p)?;
    }
    let bad_outputs = match layer.bad_outputs.as_deref() {
        None => crate::output::BadOutputs::Flag,
        Some(s) => crate::output::BadOutputs::parse(s.trim()).ok_or_else(|| {
            Error::spec(
                field("bad_outputs"),
                format!("{s:?} is not a choice; use \"flag\" (mark the frame) or \"fail\" (fail it, so it is retried)"),
            )
        })?,
    };
    Ok(NewLayer {
        name: layer.name,
        command: layer.command,
        frames,
        chunk: layer.chunk as u32,
        asked,
        env: layer.env,
        retries: layer.retries as u32,
        depends: layer.depends,
        cwd,
        tasks: tasks as u32,
        outputs: layer.outputs,
        bad_outputs,
    })
}

pub(super) fn check_depends(layers: &[NewLayer]) -> Result<()> {
    let index: HashMap<&str, usize> = layers
        .iter()
        .enumerate()
        .map(|(i, l)| (l.name.as_str(), i))
        .collect();
    for (i, layer) in layers.iter().enumerate() {
        let mut seen = HashSet::new();
        for (j, dep) in layer.depends.iter().enumerate() {
            let field = format!("layers[{i}].depends[{j}]");
            let name = &dep.layer;
            if *name == layer.name {
                let msg = format!("layer {name:?} cannot depend on itself; remove this entry");
                return Err(Error::spec(field, msg));
            }
            if !index.contains_key(name.as_str()) {
                let msg = format!(
                    "{name:?} is not a layer of this job; its layers are: {}",
                    name_list(layers)
                );
                return Err(Error::spec(field, msg));
            }
            if !seen.insert(name) {
                return Err(Error::spec(
                    field,
                    format!("{name:?} is listed twice; list each layer once"),
                ));
            }
        }
    }
    let edges: Vec<Vec<usize>> = layers
        .iter()
        .map(|l| l.depends.iter().map(|d| index[d.layer.as_str()]).collect())
        .collect();
    if let Some(mut cycle) = find_cycle(&edges) {
        // Start from the earliest layer in the spec so the report is stable.
        let first = (0..cycle.len()).min_by_key(|&k| cycle[k]).unwrap_or(0);
        cycle.rotate_left(first);
        let (from, to) = (cycle[0], cycle[1 % cycle.len()]);
        let j = edges[from].iter().position(|&t| t == to).unwrap_or(0);
        let mut names: Vec<&str> = cycle.iter().map(|&k| layers[k].name.as_str()).collect();
        names.push(&layers[from].name);
        return Err(Error::spec(
            format!("layers[{from}].depends[{j}]"),
            format!(
                "dependency cycle: {}; remove one of these dependencies",
                names.join(" -> ")
            ),
        ));
    }
    Ok(())
}

/// The layers' names for a message, cut short where a job has very many.
fn name_list(layers: &[NewLayer]) -> String {
    const SHOWN: usize = 20;
    let names: Vec<&str> = layers.iter().take(SHOWN).map(|l| l.name.as_str()).collect();
    match layers.len().checked_sub(SHOWN) {
        Some(more) if more > 0 => format!("{} and {more} more", names.join(", ")),
        _ => names.join(", "),
    }
}

/// A cycle in a graph given as adjacency lists, as the nodes along it.
fn find_cycle(edges: &[Vec<usize>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        v: usize,
        edges: &[Vec<usize>],
        mark: &mut [Mark],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        mark[v] = Mark::Open;
        path.push(v);
        for &w in &edges[v] {
            match mark[w] {
                Mark::Open => {
                    let at = path.iter().position(|&p| p == w).unwrap_or(0);
                    return Some(path[at..].to_vec());
                }
                Mark::New => {
                    if let Some(cycle) = visit(w, edges, mark, path) {
                        return Some(cycle);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        mark[v] = Mark::Done;
        None
    }
    let mut mark = vec![Mark::New; edges.len()];
    let mut path = Vec::new();
    (0..edges.len()).find_map(|v| match mark[v] {
        Mark::New => visit(v, edges, &mut mark, &mut path),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycles_are_found_with_their_path() {
        assert_eq!(find_cycle(&[vec![1], vec![2], vec![]]), None);
        assert_eq!(find_cycle(&[vec![1], vec![2], vec![1]]), Some(vec![1, 2]));
        assert_eq!(
            find_cycle(&[vec![], vec![0, 2], vec![3], vec![1]]),
            Some(vec![1, 2, 3])
        );
        // A diamond is not a cycle.
        assert_eq!(find_cycle(&[vec![1, 2], vec![3], vec![3], vec![]]), None);
    }

    #[test]
    fn cwd_is_resolved_by_text() {
        let ctx = SubmitContext {
            base_dir: Some("/shows/a/".into()),
            ..Default::default()
        };
        assert_eq!(resolve_cwd("cwd", "out", &ctx).unwrap(), "/shows/a/out");
        assert_eq!(
            resolve_cwd("cwd", "./out//x/", &ctx).unwrap(),
            "/shows/a/out/x"
        );
        assert_eq!(resolve_cwd("cwd", "../b", &ctx).unwrap(), "/shows/a/../b");
        assert_eq!(resolve_cwd("cwd", "/abs", &ctx).unwrap(), "/abs");
        let relative_base = SubmitContext {
            base_dir: Some("shows".into()),
            ..Default::default()
        };
        assert!(resolve_cwd("cwd", "out", &relative_base).is_err());
    }
}
