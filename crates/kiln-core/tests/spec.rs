//! Job spec reading and validation, through the public API only.

use kiln_core::frameset::Task;
use kiln_core::model::{Command, CoreRequest, LayerDep, Resources, TagReq};
use kiln_core::spec::{
    parse, parse_and_validate, validate, Format, NewJob, NewLayer, SubmitContext,
};
use kiln_core::Error;
use std::collections::BTreeMap;

const FULL_YAML: &str = r##"
name: shot010-lighting
show: myshow
shot: sh010
facility: paris
user: alice
priority: 250
paused: true
cwd: /shows/myshow/sh010
env:
  OCIO: /shows/myshow/config.ocio
  THREADS: 8
depends: [shot010-anim, 42]
layers:
  - name: render
    command: "render --frames #FRAMESPEC# -o out.#ZFRAME#.exr"
    frames: 1-10
    chunk: 4
    cores: 2.5
    memory: 8G
    gpus: 1
    tags: [linux, "gpu|cuda"]
    env: {PASS: beauty}
    retries: 1
    timeout: 1h30m
  - name: comp
    command: [nuke, -x, comp.nk, "#FRAME#", 5]
    frames: 1-10x5
    memory: 512M
    cwd: comp
    depends:
      - {layer: render, per_frame: true}
  - name: publish
    command: publish #JOB#
    frames: 1
    timeout: 600
    depends: [comp, render]
"##;

const FULL_JSON: &str = r##"{
  "name": "shot010-lighting", "show": "myshow", "shot": "sh010", "facility": "paris",
  "user": "alice", "priority": 250, "paused": true, "cwd": "/shows/myshow/sh010",
  "env": {"OCIO": "/shows/myshow/config.ocio", "THREADS": 8},
  "depends": ["shot010-anim", 42],
  "layers": [
    {"name": "render", "command": "render --frames #FRAMESPEC# -o out.#ZFRAME#.exr",
     "frames": "1-10", "chunk": 4, "cores": 2.5, "memory": "8G", "gpus": 1,
     "tags": ["linux", "gpu|cuda"], "env": {"PASS": "beauty"}, "retries": 1, "timeout": "1h30m"},
    {"name": "comp", "command": ["nuke", "-x", "comp.nk", "#FRAME#", 5], "frames": "1-10x5",
     "memory": "512M", "cwd": "comp", "depends": [{"layer": "render", "per_frame": true}]},
    {"name": "publish", "command": "publish", "frames": 1, "timeout": 600,
     "depends": ["comp", "render"]}
  ]
}"##;

fn ctx() -> SubmitContext {
    SubmitContext {
        user: "bob".into(),
        base_dir: Some("/shows/myshow/specs".into()),
        ..SubmitContext::default()
    }
}

/// A validated layer's tasks, cut as the farm cuts them.
fn tasks(layer: &NewLayer) -> Vec<Task> {
    layer.frame_set().unwrap().tasks(layer.chunk).collect()
}

fn task(number: i64, last: i64, chunk: &str) -> Task {
    Task {
        number,
        last,
        chunk: chunk.into(),
    }
}

/// The field and message of the error a YAML spec is rejected with.
fn reject(yaml: &str) -> (String, String) {
    reject_with(yaml, &ctx())
}

fn reject_with(yaml: &str, ctx: &SubmitContext) -> (String, String) {
    match parse_and_validate(yaml, Format::Yaml, ctx) {
        Err(Error::Spec { field, message }) => (field, message),
        other => panic!("expected a spec error, got {other:?}"),
    }
}

/// A one-layer YAML spec with `extra` lines added to the layer.
fn one_layer(extra: &str) -> String {
    let mut s = String::from("name: j\nlayers:\n  - name: a\n    command: run\n    frames: 1-3\n");
    for line in extra.lines() {
        s.push_str("    ");
        s.push_str(line);
        s.push('\n');
    }
    s
}

#[test]
fn a_full_yaml_spec() {
    let job = parse_and_validate(FULL_YAML, Format::Yaml, &ctx()).unwrap();
    assert_eq!(job.name, "shot010-lighting");
    assert_eq!((job.show.as_str(), job.shot.as_str()), ("myshow", "sh010"));
    assert_eq!(job.facility, "paris");
    assert_eq!(job.user, "alice");
    assert_eq!(job.priority, Some(250));
    assert!(job.paused);
    assert_eq!(job.depends, vec!["shot010-anim", "42"]);
    assert_eq!(
        job.env,
        BTreeMap::from([
            ("OCIO".to_string(), "/shows/myshow/config.ocio".to_string()),
            ("THREADS".to_string(), "8".to_string()),
        ])
    );
    assert_eq!(job.layers.len(), 3);

    let render = &job.layers[0];
    assert_eq!(render.name, "render");
    assert_eq!(
        render.command,
        Command::Shell("render --frames #FRAMESPEC# -o out.#ZFRAME#.exr".into())
    );
    assert_eq!(render.frames, "1-10");
    assert_eq!(render.chunk, 4);
    assert_eq!(render.asked.cores, Some(CoreRequest::Exact(250)));
    assert_eq!(render.asked.memory_kb, Some(8 << 20));
    assert_eq!(render.asked.gpus, Some(1));
    assert_eq!(
        render.asked.tags.clone().unwrap(),
        vec![
            TagReq {
                any_of: vec!["linux".into()]
            },
            TagReq {
                any_of: vec!["gpu".into(), "cuda".into()]
            },
        ]
    );
    assert_eq!(render.env.get("PASS").map(String::as_str), Some("beauty"));
    assert_eq!(render.retries, 1);
    assert_eq!(render.asked.timeout_s, Some(5400));
    assert!(render.depends.is_empty());
    assert_eq!(render.cwd.as_deref(), Some("/shows/myshow/sh010"));
    assert_eq!(
        tasks(render),
        vec![task(1, 4, "1-4"), task(5, 8, "5-8"), task(9, 10, "9-10")]
    );

    let comp = &job.layers[1];
    assert_eq!(
        comp.command,
        Command::Argv(vec![
            "nuke".into(),
            "-x".into(),
            "comp.nk".into(),
            "#FRAME#".into(),
            "5".into()
        ])
    );
    assert_eq!(comp.chunk, 1);
    let r = comp.asked.resolve(&[]);
    assert_eq!(
        r.resources,
        Resources {
            cores: 100,
            memory_kb: 512 << 10,
            ..Default::default()
        }
    );
    assert_eq!(comp.retries, 3);
    assert_eq!(comp.asked.timeout_s, None);
    assert_eq!(comp.cwd.as_deref(), Some("/shows/myshow/specs/comp"));
    assert_eq!(
        comp.depends,
        vec![LayerDep {
            layer: "render".into(),
            per_frame: true
        }]
    );
    assert_eq!(tasks(comp), vec![task(1, 1, "1"), task(6, 6, "6")]);

    let publish = &job.layers[2];
    // An unquoted ` #` starts a YAML comment: the token is gone.
    assert_eq!(publish.command, Command::Shell("publish".into()));
    assert_eq!(publish.frames, "1");
    assert_eq!(publish.asked.timeout_s, Some(600));
    assert_eq!(
        publish.depends,
        vec![
            LayerDep {
                layer: "comp".into(),
                per_frame: false
            },
            LayerDep {
                layer: "render".into(),
                per_frame: false
            },
        ]
    );
}

#[test]
fn json_and_yaml_read_the_same() {
    let yaml = parse_and_validate(FULL_YAML, Format::Yaml, &ctx()).unwrap();
    let json = parse_and_validate(FULL_JSON, Format::Json, &ctx()).unwrap();
    assert_eq!(yaml, json);
    assert_eq!(
        parse_and_validate(FULL_JSON, Format::Auto, &ctx()).unwrap(),
        json
    );
    assert_eq!(
        parse_and_validate(FULL_YAML, Format::Auto, &ctx()).unwrap(),
        yaml
    );
}

#[test]
fn defaults() {
    let job: NewJob = parse_and_validate(&one_layer(""), Format::Yaml, &ctx()).unwrap();
    assert_eq!(job.show, "default");
    assert_eq!(job.shot, "default");
    assert_eq!(job.facility, "local");
    assert_eq!(job.user, "bob");
    assert_eq!(job.priority, None, "the show's default applies");
    assert!(!job.paused);
    assert!(job.env.is_empty() && job.depends.is_empty());
    let layer = &job.layers[0];
    assert_eq!(layer.chunk, 1);
    let r = layer.asked.resolve(&[]);
    assert_eq!(
        r.resources,
        Resources {
            cores: 100,
            memory_kb: 1 << 20,
            ..Default::default()
        }
    );
    assert_eq!(layer.retries, 3);
    assert_eq!(r.timeout_s, None);
    assert_eq!(layer.cwd, None);
    assert!(r.tags.is_empty() && layer.env.is_empty() && layer.depends.is_empty());
    assert_eq!(layer.tasks, 3);
    assert_eq!(tasks(layer).len(), 3);

    let defaults = SubmitContext::default();
    assert_eq!(defaults.user, "unknown");
    assert_eq!(defaults.base_dir, None);
    assert_eq!(defaults.max_frames_per_layer, 1_000_000);
    assert_eq!(defaults.max_frames_per_job, 1_000_000);
    assert_eq!(defaults.max_job_frames, 2_000_000);
}

#[test]
fn parse_then_validate_allows_edits_between() {
    let mut spec = parse(&one_layer(""), Format::Yaml).unwrap();
    assert_eq!(spec.layers[0].memory, None);
    spec.priority = Some(7);
    spec.layers[0].chunk = 2;
    let job = validate(spec, &ctx()).unwrap();
    assert_eq!(job.priority, Some(7));
    assert_eq!(
        tasks(&job.layers[0]),
        vec![task(1, 2, "1-2"), task(3, 3, "3")]
    );
}

#[test]
fn frames_may_be_written_as_numbers() {
    let job = parse_and_validate(
        &one_layer("chunk: 1").replace("1-3", "-5"),
        Format::Yaml,
        &ctx(),
    );
    assert_eq!(job.unwrap().layers[0].frames, "-5");
    let job = parse_and_validate(
        &one_layer("").replace("1-3", "\" 1-3 \""),
        Format::Yaml,
        &ctx(),
    );
    assert_eq!(job.unwrap().layers[0].frames, "1-3");
}

#[test]
fn cores_are_rounded_to_centicores() {
    let cores = |c: &str| {
        parse_and_validate(&one_layer(&format!("cores: {c}")), Format::Yaml, &ctx())
            .map(|j| j.layers[0].asked.resolve(&[]).resources.cores)
    };
    assert_eq!(cores("0.333"), Ok(33));
    assert_eq!(cores("0.5"), Ok(50));
    assert_eq!(cores("4"), Ok(400));
    assert_eq!(cores("1024"), Ok(102_400));
}

#[test]
fn bad_frames_name_the_layer() {
    let yaml = one_layer("").replace(
        "frames: 1-3",
        "frames: 1-3\n  - name: b\n    command: x\n    frames: 1-x",
    );
    let (field, message) = reject(&yaml);
    assert_eq!(field, "layers[1].frames");
    assert_eq!(
        format!("{field}: {message}"),
        "layers[1].frames: \"1-x\" is not a frame range (write it like 1-100, 1-100x5 or 1,5,9)"
    );
    let err = parse_and_validate(&yaml, Format::Yaml, &ctx()).unwrap_err();
    assert_eq!(err.to_string(), format!("{field}: {message}"));

    assert_eq!(
        reject(&one_layer("").replace("1-3", "\"\"")).0,
        "layers[0].frames"
    );
    assert_eq!(
        reject(&one_layer("").replace("1-3", "1-10x0")).0,
        "layers[0].frames"
    );
    assert_eq!(
        reject(&one_layer("").replace("1-3", "[1, 2]")).0,
        "layers[0].frames"
    );
}

#[test]
fn too_many_frames() {
    let (field, message) = reject(&one_layer("").replace("1-3", "1-1000000000"));
    assert_eq!(field, "layers[0].frames");
    assert_eq!(
        message,
        "\"1-1000000000\" has 1000000000 frames; a layer may have at most 1000000"
    );

    let small = SubmitContext {
        max_frames_per_layer: 10,
        max_frames_per_job: 15,
        ..ctx()
    };
    assert_eq!(
        reject_with(&one_layer("").replace("1-3", "1-11"), &small).0,
        "layers[0].frames"
    );
    let two = one_layer("").replace(
        "frames: 1-3",
        "frames: 1-10\n  - name: b\n    command: x\n    frames: 1-6",
    );
    let (field, message) = reject_with(&two, &small);
    assert_eq!(field, "layers[1].frames");
    assert!(
        message.contains("brings the job to 16 tasks; a job may have at most 15"),
        "{message}"
    );
    // The job limit counts tasks, so a larger chunk fits.
    let chunked = two.replace("frames: 1-6", "frames: 1-6\n    chunk: 2");
    assert!(parse_and_validate(&chunked, Format::Yaml, &small).is_ok());
    // Frames are counted too, repeats included, whatever the chunk, and
    // before any layer's set is expanded: a bad set in a later layer does
    // not hide that the job is too big.
    let frames_capped = SubmitContext {
        max_job_frames: 15,
        ..small
    };
    let big_chunks = two
        .replace("frames: 1-6", "frames: 1-3,3-5\n    chunk: 10")
        .replace("frames: 1-10", "frames: 1-10\n    chunk: 10")
        + "  - name: c\n    command: x\n    frames: 1-\n";
    let (field, message) = reject_with(&big_chunks, &frames_capped);
    assert_eq!(field, "layers[1].frames");
    assert!(
        message.contains("brings the job to 16 frames; a job may have at most 15"),
        "{message}"
    );
}

#[test]
fn job_field_rejections() {
    let base = one_layer("");
    let cases = [
        ("name: j", "name: \"my job\"", "name"),
        ("name: j", "name: \"\"", "name"),
        ("name: j", "name: \"..\"", "name"),
        ("name: j", &format!("name: {}", "a".repeat(129)), "name"),
        ("name: j", "name: j\nshow: a/b", "show"),
        ("name: j", "name: j\nshot: \"a b\"", "shot"),
        ("name: j", "name: j\nfacility: \"\"", "facility"),
        ("name: j", "name: j\nuser: \"a b\"", "user"),
        ("name: j", "name: j\npriority: -1", "priority"),
        ("name: j", "name: j\npriority: 1000001", "priority"),
        ("name: j", "name: j\nenv: {\"A=B\": x}", "env"),
        ("name: j", "name: j\nenv: {\"\": x}", "env"),
        ("name: j", "name: j\nenv: {A: \"x\\0y\"}", "env.A"),
        ("name: j", "name: j\ndepends: [a, \" \"]", "depends[1]"),
        ("name: j", "name: j\ncwd: relative/dir", "cwd"),
        ("name: j", "name: j\ncwd: \"\"", "cwd"),
    ];
    let no_base = SubmitContext {
        base_dir: None,
        ..ctx()
    };
    for (from, to, field) in cases {
        let (got, message) = reject_with(&base.replacen(from, to, 1), &no_base);
        assert_eq!(got, field, "{to}: {message}");
    }
    assert!(
        reject_with(&base.replace("name: j", "name: j\ncwd: out"), &no_base)
            .1
            .contains("give an absolute path")
    );
    assert!(reject(&base.replace("name: j", "name: \"my job\""))
        .1
        .contains("' '"));
}

#[test]
fn layer_count_limits() {
    let (field, message) = reject("name: j\nlayers: []\n");
    assert_eq!(
        (field.as_str(), message.as_str()),
        ("layers", "is empty; a job needs at least one layer")
    );
    let mut many = String::from("name: j\nlayers:\n");
    for i in 0..1001 {
        many.push_str(&format!("  - {{name: l{i}, command: x, frames: 1}}\n"));
    }
    let (field, message) = reject(&many);
    assert_eq!(field, "layers");
    assert!(message.contains("1001 layers"), "{message}");
}

#[test]
fn layer_field_rejections() {
    let cases = [
        ("chunk: 0", "layers[0].chunk"),
        ("chunk: 1000001", "layers[0].chunk"),
        ("cores: 0", "layers[0].cores"),
        ("cores: -1", "layers[0].cores"),
        ("cores: 1025", "layers[0].cores"),
        ("cores: 0.001", "layers[0].cores"),
        ("cores: .nan", "layers[0].cores"),
        ("memory: 4096", "layers[0].memory"),
        ("memory: 17T", "layers[0].memory"),
        ("memory: lots", "layers[0].memory"),
        ("gpus: 65", "layers[0].gpus"),
        ("gpus: -1", "layers[0].gpus"),
        ("tags: [linux, \"a b\"]", "layers[0].tags[1]"),
        ("tags: [\"gpu|\"]", "layers[0].tags[0]"),
        ("tags: [\"\"]", "layers[0].tags[0]"),
        ("env: {\"A=B\": x}", "layers[0].env"),
        ("env: {A: \"\\0\"}", "layers[0].env.A"),
        ("retries: 101", "layers[0].retries"),
        ("retries: -1", "layers[0].retries"),
        ("timeout: 0", "layers[0].timeout"),
        ("timeout: 0s", "layers[0].timeout"),
        ("timeout: soon", "layers[0].timeout"),
        ("cwd: \"\"", "layers[0].cwd"),
    ];
    for (extra, field) in cases {
        let (got, message) = reject(&one_layer(extra));
        assert_eq!(got, field, "{extra}: {message}");
    }
    assert_eq!(
        reject(&one_layer("memory: 4096")).1,
        "\"4096\" has no unit; give a unit like \"4G\" or \"512M\""
    );
    let no_base = SubmitContext {
        base_dir: None,
        ..ctx()
    };
    let (field, message) = reject_with(&one_layer("cwd: out"), &no_base);
    assert_eq!(field, "layers[0].cwd");
    assert!(message.contains("give an absolute path"), "{message}");
}

#[test]
fn layer_names_and_commands() {
    let (field, message) = reject(&one_layer("").replace("name: a", "name: \"a b\""));
    assert_eq!(field, "layers[0].name");
    assert!(message.contains("' '"), "{message}");

    let dup = one_layer("").replace(
        "frames: 1-3",
        "frames: 1-3\n  - {name: b, command: x, frames: 1}\n  - {name: a, command: x, frames: 1}",
    );
    let (field, message) = reject(&dup);
    assert_eq!(field, "layers[2].name");
    assert!(message.contains("layers[0]"), "{message}");

    for command in ["\"\"", "\"  \"", "[]", "[\"\", x]"] {
        let yaml = one_layer("").replace("command: run", &format!("command: {command}"));
        assert_eq!(reject(&yaml).0, "layers[0].command", "{command}");
    }
    let yaml = one_layer("").replace("command: run", "command: [run, \"a\\0\"]");
    assert_eq!(reject(&yaml).0, "layers[0].command[1]");
    let yaml = one_layer("").replace("command: run", "command: {run: 1}");
    assert_eq!(reject(&yaml).0, "layers[0].command");
}

fn three_layers(deps: [&str; 3]) -> String {
    let mut s = String::from("name: j\nlayers:\n");
    for (name, dep) in ["render", "comp", "publish"].iter().zip(deps) {
        s.push_str(&format!(
            "  - name: {name}\n    command: x\n    frames: 1-3\n    depends: {dep}\n"
        ));
    }
    s
}

#[test]
fn dependency_rejections() {
    let (field, message) = reject(&three_layers(["[]", "[rendr]", "[]"]));
    assert_eq!(field, "layers[1].depends[0]");
    assert_eq!(
        message,
        "\"rendr\" is not a layer of this job; its layers are: render, comp, publish"
    );

    let (field, message) = reject(&three_layers(["[]", "[render, comp]", "[]"]));
    assert_eq!(field, "layers[1].depends[1]");
    assert!(message.contains("cannot depend on itself"), "{message}");

    let (field, message) = reject(&three_layers([
        "[]",
        "[render, {layer: render, per_frame: true}]",
        "[]",
    ]));
    assert_eq!(field, "layers[1].depends[1]");
    assert!(message.contains("twice"), "{message}");

    let (field, message) = reject(&three_layers(["[comp]", "[publish, render]", "[]"]));
    assert_eq!(field, "layers[0].depends[0]");
    assert_eq!(
        message,
        "dependency cycle: render -> comp -> render; remove one of these dependencies"
    );

    let (field, message) = reject(&three_layers(["[]", "[publish]", "[render, comp]"]));
    assert_eq!(field, "layers[1].depends[0]");
    assert!(
        message.starts_with("dependency cycle: comp -> publish -> comp"),
        "{message}"
    );

    let (field, message) = reject(&three_layers(["[publish]", "[render]", "[comp]"]));
    assert_eq!(field, "layers[0].depends[0]");
    assert!(
        message.starts_with("dependency cycle: render -> publish -> comp -> render"),
        "{message}"
    );

    let yaml = three_layers(["[]", "[{layer: render}]", "[render, comp]"]);
    let job = parse_and_validate(&yaml, Format::Yaml, &ctx()).unwrap();
    let whole = LayerDep {
        layer: "render".into(),
        per_frame: false,
    };
    assert_eq!(job.layers[1].depends, vec![whole]);
}

#[test]
fn unknown_dependency_lists_at_most_twenty_layers() {
    let mut yaml = String::from("name: j\nlayers:\n");
    for i in 0..25 {
        yaml.push_str(&format!("  - {{name: l{i}, command: x, frames: 1}}\n"));
    }
    yaml.push_str("  - {name: last, command: x, frames: 1, depends: [nope]}\n");
    let (field, message) = reject(&yaml);
    assert_eq!(field, "layers[25].depends[0]");
    assert!(message.ends_with("l18, l19 and 6 more"), "{message}");
}

#[test]
fn shape_errors_name_the_field() {
    let (field, message) = reject(&one_layer("bogus: 1"));
    assert_eq!(field, "layers[0].bogus");
    assert!(
        message.starts_with("unknown field `bogus`, expected one of `name`, `command`, `frames`"),
        "{message}"
    );

    let (field, message) = reject(&one_layer("").replace("name: j", "name: j\nprio: 1"));
    assert_eq!(field, "prio");
    assert!(message.contains("`priority`"), "{message}");

    let (field, message) = reject(&one_layer("depends: [{layer: a, perframe: true}]"));
    assert_eq!(field, "layers[0].depends[0].perframe");
    assert!(message.contains("`per_frame`"), "{message}");

    assert_eq!(reject(&one_layer("chunk: many")).0, "layers[0].chunk");
    assert!(reject(&one_layer("chunk: many"))
        .1
        .contains("expected a whole number"));
    assert_eq!(reject(&one_layer("tags: linux")).0, "layers[0].tags");
    assert_eq!(reject(&one_layer("env: {A: [1]}")).0, "layers[0].env.A");
    assert_eq!(
        reject(&one_layer("depends: [{per_frame: true}]")).0,
        "layers[0].depends[0].layer"
    );
    assert_eq!(
        reject(&one_layer("depends: [[a]]")).0,
        "layers[0].depends[0]"
    );
    assert_eq!(reject(&one_layer("paused: true")).0, "layers[0].paused");

    let (field, message) = reject("layers: []\n");
    assert_eq!(
        (field.as_str(), message.as_str()),
        ("name", "missing field `name`")
    );
    let (field, message) = reject("name: j\nlayers:\n  - name: a\n    frames: 1\n");
    assert_eq!(field, "layers[0].command");
    assert!(message.starts_with("missing field `command`"), "{message}");
}

#[test]
fn json_shape_errors_name_the_field() {
    let reject_json = |json: &str| match parse(json, Format::Json) {
        Err(Error::Spec { field, message }) => (field, message),
        other => panic!("{other:?}"),
    };
    let (field, _) =
        reject_json(r#"{"name": "j", "layers": [{"name": "a", "command": "x", "frames": true}]}"#);
    assert_eq!(field, "layers[0].frames");
    let (field, message) =
        reject_json(r#"{"name": "j", "layers": [{"name": "a", "command": "x"}]}"#);
    assert_eq!(field, "layers[0].frames");
    assert!(message.contains("missing field `frames`"));
    let (field, _) = reject_json(
        r#"{"name": "j", "layers": [{"name": "a", "command": "x", "frames": 1, "x": 1}]}"#,
    );
    assert_eq!(field, "layers[0].x");
    let (field, message) =
        reject_json(r#"{"name": "j", "layers": [{"name": "a" "command": "x"}]}"#);
    assert_eq!(field, "spec");
    assert!(message.contains("line 1 column"), "{message}");
    let (field, message) = reject_json(r#"{"name": "j", "layers": []} {}"#);
    assert_eq!(field, "spec");
    assert!(message.contains("trailing"), "{message}");
    assert_eq!(reject_json("[\"j\"]").0, "spec");
}

#[test]
fn syntax_errors_are_charged_to_the_spec() {
    for yaml in [
        "name: j\nlayers: [\n",
        "name: [j\n",
        "name: j\n  bad: indent\n x",
        "a: 1\n---\nb: 2\n",
    ] {
        let (field, message) = reject(yaml);
        assert_eq!(field, "spec", "{yaml}: {message}");
    }
    assert!(reject("name: j\nlayers: [\n").1.contains("line 3 column 1"));
    assert_eq!(reject("").0, "spec");
    assert_eq!(reject("   \n").0, "spec");
    assert_eq!(reject("hello").0, "spec");
    assert_eq!(reject("- 1\n").0, "spec");
}

/// The reference's examples must stay valid specs.
#[test]
fn the_documented_examples_are_valid() {
    let doc = include_str!("../../../docs/spec.md");
    let example = doc.split("## Complete example").nth(1).unwrap();
    let block = |fence: &str| {
        let start = example.find(fence).unwrap() + fence.len();
        let len = example[start..].find("```").unwrap();
        &example[start..start + len]
    };
    let ctx = SubmitContext {
        base_dir: Some("/shows/myshow/specs".into()),
        ..SubmitContext::default()
    };
    let job = parse_and_validate(block("```yaml\n"), Format::Auto, &ctx).unwrap();
    assert_eq!(job.layers.len(), 4);
    assert_eq!(
        job.layers[2].cwd.as_deref(),
        Some("/shows/myshow/specs/comp")
    );
    assert_eq!(job.layers[1].tasks, 20);
    let job = parse_and_validate(block("```json\n"), Format::Auto, &ctx).unwrap();
    assert_eq!(job.layers[0].tasks, 20);
}

#[test]
fn yaml_aliases_are_read_within_a_bound() {
    // Ordinary reuse is fine.
    let shared = "name: j\nlayers:\n  - {name: a, command: x, frames: 1, env: &e {A: 1, B: 2}}\n  - {name: b, command: x, frames: 1, env: *e}\n";
    let job = parse_and_validate(shared, Format::Yaml, &ctx()).unwrap();
    assert_eq!(job.layers[1].env, job.layers[0].env);
    // Aliases that multiply the text are refused before anything is built,
    // with the fix named.
    let mut s = format!("a0: &a0 [{}]\n", vec!["x"; 100].join(","));
    for i in 1..5 {
        s += &format!(
            "a{i}: &a{i} [{}]\n",
            vec![format!("*a{}", i - 1); 10].join(",")
        );
    }
    s += "name: *a4\nlayers: []\n";
    let (field, message) = reject(&s);
    assert_eq!(field, "spec");
    assert!(message.contains("YAML aliases"), "{message}");
    assert!(
        message.contains("write the repeated parts out"),
        "{message}"
    );
}
