//! The conversion of templates, and an error naming the field for each
//! kind of bad input.

use super::*;
use crate::model::Command;

fn ctx() -> SubmitContext {
    SubmitContext {
        max_frames_per_layer: 10_000,
        ..SubmitContext::default()
    }
}

fn job(text: &str, given: &[(&str, &str)]) -> Result<NewJob> {
    let given = given
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    convert(text, &given, &ctx())
}

fn script(j: &NewJob, layer: usize) -> &str {
    match &j.layers[layer].command {
        Command::Argv(a) => &a[2],
        c => panic!("not argv: {c:?}"),
    }
}

const FULL: &str = r#"
specificationVersion: 'jobtemplate-2023-09'
name: "Render {{Param.Shot}}"
parameterDefinitions:
- {name: Shot, type: STRING, default: sh010, minLength: 2, maxLength: 8}
- {name: Frames, type: STRING, default: "1-9:4"}
- {name: Count, type: INT, default: 2, minValue: 1, maxValue: 5}
- {name: Scale, type: FLOAT, default: 0.5, allowedValues: [0.5, 1.0]}
- {name: Out, type: PATH, default: /tmp/out}
steps:
- name: Render frames
  parameterSpace:
    taskParameterDefinitions:
    - {name: Frame, type: INT, range: "{{Param.Frames}}"}
    - {name: Cam, type: STRING, range: [a, b]}
    - {name: Lens, type: FLOAT, range: [1.5, "2.5"]}
    - {name: Pass, type: PATH, range: ["{{Param.Out}}/x"]}
    combination: "Frame * (Cam, Lens) * Pass"
  script:
    actions:
      onRun: {command: echo, args: ["{{Task.Param.Frame}}", "{{Task.Param.Cam}}"]}
- name: Encode
  dependencies: [{dependsOn: Render frames}]
  script:
    actions: {onRun: {command: echo, args: ["{{Param.Count}}"], timeout: 60}}
"#;

#[test]
fn a_template_becomes_layers_frames_and_dependencies() {
    let j = job(FULL, &[("kiln.show", "ads"), ("kiln.priority", "70")]).unwrap();
    assert_eq!(j.name, "Render_sh010");
    assert_eq!(j.show, "ads");
    assert_eq!(j.priority, Some(70));
    assert_eq!(j.layers.len(), 2);
    assert_eq!(j.layers[0].name, "Render_frames");
    // 3 frames (1, 5, 9) x 2 associated (Cam, Lens) x 1 pass.
    assert_eq!(j.layers[0].frames, "1-6");
    assert_eq!(j.layers[1].frames, "1-1");
    assert_eq!(
        j.layers[1].depends,
        vec![LayerDep {
            layer: "Render_frames".into(),
            per_frame: false
        }]
    );
    let s = script(&j, 0);
    // The values are in the script once, the task's picked by arithmetic
    // (space.rs tests that against bash).
    assert!(
        s.contains("r0='1,4,3'\nr1=('a' 'b')\nr2=('1.5' '2.5')\nr3=('/tmp/out/x')\n"),
        "{s}"
    );
    assert!(s.contains("-ge 6 ]; then echo"), "{s}");
    assert!(s.contains("'echo' \"${t0}\" \"${t1}\""), "{s}");
    assert!(script(&j, 1).contains("timeout -s KILL 60 'echo' '2'"));
    // Notified once (the inner, foreground timeout signals only the
    // action's process), then every process killed (the outer one).
    let notify = FULL.replace(
        "timeout: 60}",
        "timeout: 60, cancelation: {mode: NOTIFY_THEN_TERMINATE, notifyPeriodInSeconds: 5}}",
    );
    let j = job(&notify, &[]).unwrap();
    let s = script(&j, 1);
    assert!(
        s.contains("timeout -s KILL 65 timeout --foreground -s TERM 60 'echo' '2'"),
        "{s}"
    );
}

#[test]
fn range_expressions() {
    let r = |t: &str| {
        range_expr("f", t, 1000).map(|runs| {
            let r = space::Range::Runs(runs);
            let n: u64 = match &r {
                space::Range::Runs(x) => x.iter().map(|x| x.count).sum(),
                _ => 0,
            };
            (0..n as usize).map(|k| r.get(k)).collect::<Vec<_>>()
        })
    };
    assert_eq!(r("1-10:4").unwrap(), ["1", "5", "9"]);
    assert_eq!(r("3").unwrap(), ["3"]);
    assert_eq!(r("-2--1, 10-8").unwrap(), ["-2", "-1", "10", "9", "8"]);
    assert_eq!(r("10-1:-3").unwrap(), ["10", "7", "4", "1"]);
    for bad in ["", "1-", "a-3", "1-5:0", "1-5:-1", "1-5,3", "1,,2", "1-3:x"] {
        let e = r(bad).unwrap_err().to_string();
        assert!(e.starts_with("f: "), "{bad}: {e}");
    }
    assert!(range_expr("f", "1-2000", 1000)
        .unwrap_err()
        .to_string()
        .contains("more than 1000"));
}

#[test]
fn parameters_take_given_values_and_check_them() {
    let j = job(FULL, &[("Shot", "ab"), ("Count", "5"), ("Scale", "1.0")]).unwrap();
    assert_eq!(j.name, "Render_ab");
    assert!(script(&j, 1).contains("'echo' '5'"));
}

/// Each bad input, the field its error names, and a word of the message.
/// A template, its given values, the field its error names, a word of it.
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, &'a str);

#[test]
fn every_bad_input_names_its_field() {
    let cases: &[Case] = &[
        (FULL, &[("Count", "9")], "parameter Count", "above"),
        (FULL, &[("Count", "0")], "parameter Count", "below"),
        (FULL, &[("Count", "x")], "parameter Count", "not an integer"),
        (
            FULL,
            &[("Count", "1.5")],
            "parameter Count",
            "not an integer",
        ),
        (FULL, &[("Scale", "2")], "parameter Scale", "allowedValues"),
        (FULL, &[("Scale", "abc")], "parameter Scale", "not a number"),
        (FULL, &[("Shot", "a")], "parameter Shot", "minLength"),
        (
            FULL,
            &[("Shot", "abcdefghi")],
            "parameter Shot",
            "maxLength",
        ),
        (
            FULL,
            &[("Nope", "1")],
            "parameter Nope",
            "defines no parameter",
        ),
        (
            FULL,
            &[("kiln.colour", "1")],
            "parameter kiln.colour",
            "Kiln's own",
        ),
        (
            FULL,
            &[("kiln.priority", "high")],
            "kiln.priority",
            "whole number",
        ),
        (
            FULL,
            &[("Frames", "1-5,3")],
            "steps[0].parameterSpace.taskParameterDefinitions[0].range",
            "overlap",
        ),
        (
            FULL,
            &[("Frames", "1-3:0")],
            "steps[0].parameterSpace.taskParameterDefinitions[0].range",
            "step",
        ),
    ];
    for (text, given, field, word) in cases {
        let e = job(text, given).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{field}: ")) && e.contains(word),
            "{given:?}: {e}"
        );
    }
    let edits: &[(&str, &str, &str, &str)] = &[
        (
            "jobtemplate-2023-09'",
            "jobtemplate-2023-09'\nextensions: [TASK_CHUNKING]",
            "extensions",
            "no OpenJD extensions",
        ),
        (
            "type: INT, default: 2",
            "type: INTEGER, default: 2",
            "parameterDefinitions[2].type",
            "not a job parameter type",
        ),
        (
            "{name: Count, type: INT, default: 2,",
            "{name: Count, type: INT,",
            "parameter Count",
            "no value and no default",
        ),
        (
            "{name: Count,",
            "{name: 2Count,",
            "parameterDefinitions[2].name",
            "not a parameter name",
        ),
        (
            "minLength: 2",
            "minValue: 2",
            "parameterDefinitions[0].minValue",
            "does not apply",
        ),
        (
            "Render {{Param.Shot}}",
            "Render {{Param.Shoot}}",
            "name",
            "names no job parameter",
        ),
        (
            "Render {{Param.Shot}}",
            "Render {{Param.Shot",
            "name",
            "without closing",
        ),
        (
            "{name: Cam, type: STRING",
            "{name: Frame, type: STRING",
            "steps[0].parameterSpace.taskParameterDefinitions[1].name",
            "twice",
        ),
        (
            "{name: Cam, type: STRING, range: [a, b]}",
            "{name: Cam, type: STRING, range: []}",
            "steps[0].parameterSpace.taskParameterDefinitions[1].range",
            "give 1 to",
        ),
        (
            "{name: Lens, type: FLOAT, range: [1.5, \"2.5\"]}",
            "{name: Lens, type: FLOAT, range: [1.5, \"x\"]}",
            "steps[0].parameterSpace.taskParameterDefinitions[2].range[1]",
            "not a FLOAT",
        ),
        (
            "type: INT, range:",
            "type: \"CHUNK[INT]\", range:",
            "steps[0].parameterSpace.taskParameterDefinitions[0].type",
            "TASK_CHUNKING",
        ),
        (
            "Frame * (Cam, Lens) * Pass",
            "Frame * (Cam, Pass) * Lens",
            "steps[0].parameterSpace.combination",
            "one length",
        ),
        (
            "Frame * (Cam, Lens) * Pass",
            "Frame * Cam * Pass",
            "steps[0].parameterSpace.combination",
            "leaves out the task parameter Lens",
        ),
        (
            "Frame * (Cam, Lens) * Pass",
            "Frame * Cam * Lens * Pass * Frame",
            "steps[0].parameterSpace.combination",
            "twice",
        ),
        (
            "Frame * (Cam, Lens) * Pass",
            "Frame * (Cam, Lens * Pass",
            "steps[0].parameterSpace.combination",
            "not closed",
        ),
        (
            "Frame * (Cam, Lens) * Pass",
            "Frame * Cam + Lens * Pass",
            "steps[0].parameterSpace.combination",
            "unexpected",
        ),
        (
            "{{Task.Param.Cam}}\"]",
            "{{Task.Param.Camera}}\"]",
            "steps[0].script.actions.onRun.args[1]",
            "names no task parameter",
        ),
        (
            "args: [\"{{Param.Count}}\"]",
            "args: [\"{{Task.Param.Frame}}\"]",
            "steps[1].script.actions.onRun.args[0]",
            "names no task parameter",
        ),
        (
            "dependsOn: Render frames",
            "dependsOn: Rendr",
            "steps[1].dependencies[0].dependsOn",
            "not the name of a step",
        ),
        (
            "dependsOn: Render frames",
            "dependsOn: Encode",
            "steps[1].dependencies[0].dependsOn",
            "itself",
        ),
        (
            "- name: Encode",
            "- name: Render frames",
            "steps[1].name",
            "unique",
        ),
        (
            "timeout: 60",
            "timeout: 0",
            "steps[1].script.actions.onRun.timeout",
            "at least 1",
        ),
        (
            "timeout: 60",
            "timeout: 60, cancelation: {mode: KILL}",
            "steps[1].script.actions.onRun.cancelation.mode",
            "not TERMINATE",
        ),
        (
            "timeout: 60",
            "timeuot: 60",
            "steps[1].script.actions.onRun.timeuot",
            "unknown field",
        ),
        (
            "onRun: {command: echo, args: [\"{{Param.Count",
            "onRun: {command: '', args: [\"{{Param.Count",
            "steps[1].script.actions.onRun.command",
            "empty",
        ),
    ];
    for (from, to, field, word) in edits {
        assert!(FULL.contains(from), "{from}");
        let e = job(&FULL.replacen(from, to, 1), &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("{field}: ")) && e.contains(word),
            "{to}: {e}"
        );
    }
}

#[test]
fn environments_files_and_host_requirements() {
    let t = r##"{"specificationVersion": "jobtemplate-2023-09", "name": "e",
      "jobEnvironments": [{"name": "J", "variables": {"A": "{{Session.WorkingDirectory}}/a"},
        "script": {"actions": {"onEnter": {"command": "{{Env.File.go}}"}, "onExit": {"command": "true"}},
                   "embeddedFiles": [{"name": "go", "type": "TEXT", "runnable": true, "data": "#!/bin/sh\necho hi"}]}}],
      "steps": [{"name": "s", "hostRequirements": {"amounts": [{"name": "amount.worker.vcpu", "min": 2}],
          "attributes": [{"name": "attr.worker.os.family", "anyOf": ["linux"]}]},
        "stepEnvironments": [{"name": "S", "script": {"actions": {"onExit": {"command": "rm", "args": ["x"]}}}}],
        "script": {"actions": {"onRun": {"command": "{{Task.File.run}}"}},
                   "embeddedFiles": [{"name": "run", "type": "TEXT", "filename": "r.sh", "data": "x"}]}}]}"##;
    let j = job(t, &[]).unwrap();
    let s = script(&j, 0);
    assert!(s.contains("export A=\"${wd}\"'/a'"), "{s}");
    assert!(
        s.contains("kiln_enter \"${wd}\"'/env1/go.embedded' || finish $?"),
        "{s}"
    );
    assert!(s.contains("'\\#'!/bin/sh"), "{s}");
    assert!(s.contains("chmod 700 \"$wd\"/'env1/go.embedded'"), "{s}");
    assert!(s.contains("\"${wd}\"'/task/r.sh'\nfinish $?"), "{s}");
    // Exits in reverse: the step's (2) before the job's (1), onExit's default timeout.
    let two = s
        .find("-ge 2 ]; then timeout -s KILL 300 'rm' 'x'")
        .expect(s);
    let one = s.find("-ge 1 ]; then timeout -s KILL 300 'true'").expect(s);
    assert!(two < one);
    assert_eq!(
        j.layers[0].asked.cores,
        Some(crate::model::CoreRequest::AtLeast(200))
    );
    let bad = t.replace("amount.worker.vcpu", "amount.worker.licences");
    let e = job(&bad, &[]).unwrap_err().to_string();
    assert!(
        e.starts_with("steps[0].hostRequirements.amounts[0].name: "),
        "{e}"
    );
    let bad = t.replace("\"linux\"", "\"windows\"");
    let e = job(&bad, &[]).unwrap_err().to_string();
    assert!(
        e.starts_with("steps[0].hostRequirements.attributes[0]: "),
        "{e}"
    );
    let bad = t.replace(
        "\"TEXT\", \"filename\": \"r.sh\"",
        "\"TEXT\", \"filename\": \"../r.sh\"",
    );
    let e = job(&bad, &[]).unwrap_err().to_string();
    assert!(
        e.starts_with("steps[0].script.embeddedFiles[0].filename: "),
        "{e}"
    );
    let bad = t.replace("{{Env.File.go}}", "{{Task.File.run}}");
    let e = job(&bad, &[]).unwrap_err().to_string();
    assert!(
        e.starts_with("jobEnvironments[0].script.actions.onEnter.command: "),
        "{e}"
    );
}

#[test]
fn a_kiln_spec_takes_no_parameters() {
    let spec = "name: j\nlayers: [{name: l, command: 'true', frames: '1'}]\n";
    let p = BTreeMap::from([("X".to_string(), "1".to_string())]);
    let e = super::super::parse_and_validate_with(spec, super::super::Format::Auto, &p, &ctx())
        .unwrap_err();
    assert!(e.to_string().starts_with("parameter X: "), "{e}");
    assert!(super::super::parse_and_validate_with(
        FULL,
        super::super::Format::Auto,
        &BTreeMap::new(),
        &ctx()
    )
    .is_ok());
}
