//! A layer's declared outputs: what the launch asks the worker to check,
//! and what a bad output does to its frame.

use super::*;
use crate::link::FoundOutput;
use crate::output::{OutputCheck, OutputState};

fn found(path: &str, state: OutputState, brightness: Option<f32>) -> FoundOutput {
    FoundOutput {
        check: OutputCheck {
            path: path.into(),
            state,
            size: 100,
            width: 8,
            height: 8,
            brightness,
            thumbnail: true,
            detail: None,
        },
        thumbnail: Some(vec![0xff, 0xd8]),
    }
}

fn end_with(farm: &mut Farm, attempt: AttemptId, outputs: Vec<FoundOutput>, now: Millis) {
    farm.worker_event(
        WorkerEvent::Message {
            session: SESSION,
            msg: WorkerMsg::Ended(FrameEnded {
                attempt,
                exit: Exit::Exited(0),
                started_at: now,
                ended_at: now,
                max_rss_kb: 1,
                cpu_ms: 1,
                log_size: 0,
                usage: Vec::new(),
                outputs,
            }),
        },
        now,
    );
}

#[test]
fn a_launch_asks_for_each_output_of_each_frame_of_its_chunk() {
    let mut farm = farm_with_host(4);
    submit(
        &mut farm,
        "name: j\nlayers:\n  - name: r\n    command: render\n    frames: 1-3\n    chunk: 2\n    outputs: [\"out/#LAYER#.#ZFRAME#.exr\", \"/abs/#FRAME#.png\"]\n",
        0,
    );
    let mut ls = launches_whole(&mut farm, 1);
    ls.sort_by_key(|l| l.number);
    assert_eq!(
        ls[0].outputs,
        [
            "out/r.0001.exr",
            "/abs/1.png",
            "out/r.0002.exr",
            "/abs/2.png"
        ]
    );
    assert_eq!(ls[1].outputs, ["out/r.0003.exr", "/abs/3.png"]);
}

#[test]
fn an_all_black_output_fails_its_frame_where_the_layer_asks_and_it_is_retried() {
    let mut farm = farm_with_host(4);
    submit(
        &mut farm,
        "name: j\nlayers:\n  - {name: r, command: render, frames: 1, retries: 1, outputs: [a.png], bad_outputs: fail}\n",
        0,
    );
    let l = launches_whole(&mut farm, 1).remove(0);
    end_with(
        &mut farm,
        l.attempt,
        vec![found("a.png", OutputState::Black, Some(0.0))],
        2,
    );
    let f = &farm.frames[&l.frame];
    assert_eq!(f.state, FrameState::Waiting, "retried");
    assert_eq!(f.failures, 1);
    assert_eq!(f.reason.as_deref(), Some("bad output: a.png is all black"));
    assert_eq!(f.outputs[0].state, OutputState::Black);
    assert!(
        farm.fail_streaks.is_empty(),
        "a bad output is not held against its host"
    );
    // Its second attempt renders properly: it succeeds, and what the
    // frame shows is that attempt's output.
    let l = launches_whole(&mut farm, 3).remove(0);
    end_with(
        &mut farm,
        l.attempt,
        vec![found("a.png", OutputState::Ok, Some(0.4))],
        4,
    );
    let f = &farm.frames[&l.frame];
    assert_eq!(f.state, FrameState::Succeeded);
    assert_eq!(f.outputs[0].brightness, Some(0.4));
    assert_eq!(f.reason, None);
}

#[test]
fn a_bad_output_only_flags_its_frame_by_default() {
    let mut farm = farm_with_host(4);
    submit(
        &mut farm,
        "name: j\nlayers:\n  - {name: r, command: render, frames: 1, outputs: [a.png]}\n",
        0,
    );
    let l = launches_whole(&mut farm, 1).remove(0);
    end_with(
        &mut farm,
        l.attempt,
        vec![found("a.png", OutputState::Missing, None)],
        2,
    );
    let f = &farm.frames[&l.frame];
    assert_eq!(f.state, FrameState::Succeeded);
    assert_eq!(
        crate::output::problem(&f.outputs).as_deref(),
        Some("a.png is missing")
    );
}

#[test]
fn bad_output_settings_are_refused_with_the_field_named() {
    for (yaml, field, says) in [
        ("bad_outputs: retry", "layers[0].bad_outputs", "\"flag\""),
        ("outputs: [\"\"]", "layers[0].outputs[0]", "is empty"),
        (
            "outputs: [a,b,c,d,e,f,g,h,i]",
            "layers[0].outputs",
            "at most 8",
        ),
    ] {
        let spec = format!("name: j\nlayers:\n  - {{name: r, command: x, frames: 1, {yaml}}}\n");
        let e = parse_and_validate(&spec, Format::Yaml, &SubmitContext::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains(field) && e.contains(says), "{yaml}: {e}");
    }
}

#[test]
fn a_frame_unlike_both_its_neighbours_is_flagged_as_a_flicker() {
    let mut farm = farm_with_host(8);
    let job = submit(
        &mut farm,
        "name: j\nlayers:\n  - {name: r, command: render, frames: 1-4, outputs: [a.exr]}\n",
        0,
    );
    let mut ls = launches_whole(&mut farm, 1);
    ls.sort_by_key(|l| l.number);
    for (l, b) in ls.iter().zip([0.40, 0.42, 0.90, 0.41]) {
        end_with(
            &mut farm,
            l.attempt,
            vec![found("a.exr", OutputState::Ok, Some(b))],
            2,
        );
    }
    let frames = farm.list_frames(&job.to_string(), None, None).unwrap();
    let flags: Vec<Option<&str>> = frames.iter().map(|f| f.flag.as_deref()).collect();
    assert_eq!(flags[0], None);
    assert_eq!(flags[1], None);
    assert!(flags[2].unwrap().starts_with("flicker"), "{flags:?}");
    assert_eq!(flags[3], None, "the last frame has one neighbour");
    assert!(frames[2].outputs[0].thumbnail);
}

#[test]
fn frames_beside_in_dispatch_but_not_in_the_shot_are_not_compared() {
    let mut farm = farm_with_host(8);
    let job = submit(
        &mut farm,
        "name: j\nlayers:\n  - {name: r, command: render, frames: '1,5,2', outputs: [a.exr]}\n",
        0,
    );
    let ls = launches_whole(&mut farm, 1);
    let mut by_index: Vec<(u32, i64)> = ls
        .iter()
        .map(|l| (farm.frames[&l.frame].index, l.number))
        .collect();
    by_index.sort();
    assert_eq!(
        by_index.iter().map(|x| x.1).collect::<Vec<_>>(),
        [1, 5, 2],
        "dispatched in the order listed"
    );
    for l in ls {
        let b = if l.number == 5 { 0.9 } else { 0.4 };
        end_with(
            &mut farm,
            l.attempt,
            vec![found("a.exr", OutputState::Ok, Some(b))],
            2,
        );
    }
    let frames = farm.list_frames(&job.to_string(), None, None).unwrap();
    assert!(frames.iter().all(|f| f.flag.is_none()), "{frames:?}");
}
