//! What frames write: the outputs a layer declares, what a worker found of
//! them after each frame, and the rules that call a frame bad (an output
//! missing, empty, unreadable or all black, or a flicker against its
//! neighbours).
//!
//! The worker reports facts; judging them is here, so every frame is judged
//! by one rule whatever host ran it.

use serde::{Deserialize, Serialize};

/// The most outputs a layer may declare.
pub const MAX_OUTPUTS: usize = 8;
/// The most outputs checked for one attempt (a chunk's frames times the
/// layer's outputs); past it they are not looked at.
pub const MAX_CHECKED: usize = 32;
/// Mean brightness (0 to 1) at or below which an image is "all black".
pub const BLACK: f32 = 0.002;

/// What a layer does with a frame whose outputs look bad.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BadOutputs {
    /// Flag the frame, visibly; it stays succeeded.
    #[default]
    Flag,
    /// Fail the attempt, so the frame is retried (within its retries).
    Fail,
}

impl BadOutputs {
    pub fn as_str(self) -> &'static str {
        match self {
            BadOutputs::Flag => "flag",
            BadOutputs::Fail => "fail",
        }
    }

    pub fn parse(s: &str) -> Option<BadOutputs> {
        match s {
            "flag" => Some(BadOutputs::Flag),
            "fail" => Some(BadOutputs::Fail),
            _ => None,
        }
    }
}

/// What a worker found at one output path once its frame exited 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutputState {
    Ok,
    Missing,
    Empty,
    /// Read, and every pixel (near) black.
    Black,
    /// There, but not an image Kiln reads (or not readable by the frame's
    /// user); `detail` says why.
    Unreadable,
}

impl OutputState {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputState::Ok => "ok",
            OutputState::Missing => "missing",
            OutputState::Empty => "empty",
            OutputState::Black => "black",
            OutputState::Unreadable => "unreadable",
        }
    }

    pub fn parse(s: &str) -> Option<OutputState> {
        use OutputState::*;
        [Ok, Missing, Empty, Black, Unreadable]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// One output of one attempt, as kept (the thumbnail's bytes are kept
/// beside the log; `thumbnail` says whether there is one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OutputCheck {
    /// The path, tokens substituted, as the frame's host saw it.
    pub path: String,
    pub state: OutputState,
    /// Bytes on disk.
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub width: u32,
    #[serde(default)]
    pub height: u32,
    /// Mean brightness from 0 (black) to 1 (white), when it was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brightness: Option<f32>,
    /// The server keeps a small image of it.
    #[serde(default)]
    pub thumbnail: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl OutputCheck {
    /// A check of `path` with nothing found yet (state `Ok`, no figures).
    pub fn new(path: &str) -> OutputCheck {
        OutputCheck {
            path: path.to_string(),
            state: OutputState::Ok,
            size: 0,
            width: 0,
            height: 0,
            brightness: None,
            thumbnail: false,
            detail: None,
        }
    }

    /// Why this output makes its frame bad, or `None` if it is fine.
    pub fn problem(&self) -> Option<String> {
        let what = match self.state {
            OutputState::Ok => return None,
            OutputState::Missing => "is missing".to_string(),
            OutputState::Empty => "is empty (0 bytes)".to_string(),
            OutputState::Black => "is all black".to_string(),
            OutputState::Unreadable => format!(
                "cannot be read as an image ({})",
                self.detail.as_deref().unwrap_or("unknown format")
            ),
        };
        Some(format!("{} {what}", self.path))
    }
}

/// The first problem among an attempt's outputs, if any.
pub fn problem(checks: &[OutputCheck]) -> Option<String> {
    checks.iter().find_map(OutputCheck::problem)
}

/// The brightness that stands for a frame against its neighbours: the
/// mean of its readable outputs.
pub fn brightness(checks: &[OutputCheck]) -> Option<f32> {
    let v: Vec<f32> = checks.iter().filter_map(|c| c.brightness).collect();
    (!v.is_empty()).then(|| v.iter().sum::<f32>() / v.len() as f32)
}

/// Whether a frame's brightness is far from both its neighbours' while
/// they agree with each other: one frame that jumps out of a sequence (a
/// flicker), not a cut or a fade, where the neighbours differ too.
pub fn flicker(prev: Option<f32>, this: f32, next: Option<f32>) -> bool {
    let far = |a: f32, b: f32| {
        let d = (a - b).abs();
        d > 0.05 && d > 0.3 * a.max(b)
    };
    match (prev, next) {
        (Some(p), Some(n)) => far(this, p) && far(this, n) && !far(p, n),
        // At the ends of a sequence there is one neighbour to judge by;
        // without a second one a cut looks the same, so say nothing.
        _ => false,
    }
}

/// The flag a frame shows, from its outputs and its neighbours'
/// brightness: its own problem first, else a flicker.
pub fn flag(checks: &[OutputCheck], prev: Option<f32>, next: Option<f32>) -> Option<String> {
    if let Some(p) = problem(checks) {
        return Some(p);
    }
    let b = brightness(checks)?;
    flicker(prev, b, next).then(|| {
        format!(
            "flicker: brightness {:.0} % against {:.0} % and {:.0} % in the frames beside it",
            b * 100.0,
            prev.unwrap_or(0.0) * 100.0,
            next.unwrap_or(0.0) * 100.0
        )
    })
}

/// Checks one declared output path as the spec gives it.
pub fn check_path(field: &str, path: &str) -> crate::Result<()> {
    let bad = |m: &str| Err(crate::Error::spec(field, m.to_string()));
    if path.trim().is_empty() {
        return bad("is empty; give a path such as \"out/beauty.#ZFRAME#.exr\"");
    }
    if path.len() > 1024 {
        return bad("is longer than 1024 characters");
    }
    if path.contains('\0') || path.contains('\n') {
        return bad("may not hold a NUL or newline character");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(state: OutputState, b: Option<f32>) -> OutputCheck {
        OutputCheck {
            path: "out/a.0001.exr".into(),
            state,
            size: 10,
            width: 4,
            height: 4,
            brightness: b,
            thumbnail: false,
            detail: None,
        }
    }

    #[test]
    fn problems_name_the_path_and_what_is_wrong() {
        use OutputState::*;
        let table = [
            (Ok, None),
            (Missing, Some("out/a.0001.exr is missing")),
            (Empty, Some("out/a.0001.exr is empty (0 bytes)")),
            (Black, Some("out/a.0001.exr is all black")),
            (
                Unreadable,
                Some("out/a.0001.exr cannot be read as an image (unknown format)"),
            ),
        ];
        for (state, want) in table {
            assert_eq!(out(state, None).problem().as_deref(), want, "{state:?}");
        }
        let two = [out(Ok, Some(0.5)), out(Black, Some(0.0))];
        assert_eq!(
            problem(&two).as_deref(),
            Some("out/a.0001.exr is all black")
        );
    }

    #[test]
    fn a_frame_that_jumps_out_of_agreeing_neighbours_flickers() {
        let table = [
            // (prev, this, next, flicker)
            (Some(0.5), 0.5, Some(0.52), false),
            (Some(0.5), 0.9, Some(0.5), true),
            (Some(0.5), 0.1, Some(0.5), true),
            // A cut: the neighbours differ, so no single frame jumps out.
            (Some(0.1), 0.9, Some(0.9), false),
            // A fade: each frame between its neighbours.
            (Some(0.3), 0.4, Some(0.5), false),
            // Dark frames: small absolute differences are noise.
            (Some(0.01), 0.04, Some(0.01), false),
            // One neighbour: not enough to tell a flicker from a cut.
            (None, 0.9, Some(0.1), false),
            (Some(0.1), 0.9, None, false),
        ];
        for (p, t, n, want) in table {
            assert_eq!(flicker(p, t, n), want, "{p:?} {t} {n:?}");
        }
    }

    #[test]
    fn a_frames_flag_is_its_own_problem_first_then_a_flicker() {
        let ok = [out(OutputState::Ok, Some(0.9))];
        assert!(flag(&ok, Some(0.5), Some(0.5))
            .unwrap()
            .starts_with("flicker: brightness 90 %"));
        assert_eq!(flag(&ok, Some(0.85), Some(0.9)), None);
        let black = [out(OutputState::Black, Some(0.0))];
        assert_eq!(
            flag(&black, Some(0.0), Some(0.0)).as_deref(),
            Some("out/a.0001.exr is all black")
        );
        assert_eq!(flag(&[], Some(0.1), Some(0.9)), None, "no outputs, no flag");
    }

    #[test]
    fn declared_paths_are_checked_with_the_field_named() {
        assert!(check_path("layers[0].outputs[0]", "out/a.#ZFRAME#.exr").is_ok());
        let e = check_path("layers[0].outputs[1]", " ")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("layers[0].outputs[1]") && e.contains("is empty"),
            "{e}"
        );
        assert!(check_path("f", "a\nb").is_err());
    }
}
