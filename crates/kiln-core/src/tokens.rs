//! Command tokens: the `#FRAME#`-style placeholders in a layer's command that
//! each task fills in with its own frame numbers, as OpenCue does.
//!
//! Values need no shell quoting: they are numbers, compact frame sets
//! (digits, `-`, `x`, `,`) and job and layer names, which validation limits
//! to letters, digits, `.`, `_` and `-`.

use crate::model::Command;

/// What a task knows about itself, for filling in its command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenContext<'a> {
    pub job: &'a str,
    pub layer: &'a str,
    /// The first frame of the task.
    pub number: i64,
    /// The last frame of the task.
    pub last: i64,
    /// The task's frames in compact form, e.g. `1-5`.
    pub chunk: &'a str,
    /// The layer's chunk size.
    pub chunk_size: u32,
}

/// The value of a token, or `None` for a word that is not a token.
fn value(token: &str, ctx: &TokenContext) -> Option<String> {
    Some(match token {
        "FRAME" | "IFRAME" | "FRAME_START" => ctx.number.to_string(),
        "ZFRAME" => zero_padded(ctx.number),
        "FRAME_END" => ctx.last.to_string(),
        "FRAMESPEC" => ctx.chunk.to_string(),
        "FRAME_CHUNK" => ctx.chunk_size.to_string(),
        "LAYER" => ctx.layer.to_string(),
        "JOB" => ctx.job.to_string(),
        _ => return None,
    })
}

/// Four digits, sign in front: `-1` is `-0001`, so file names sort the same
/// way on both sides of zero.
fn zero_padded(n: i64) -> String {
    if n < 0 {
        format!("-{:04}", n.unsigned_abs())
    } else {
        format!("{n:04}")
    }
}

/// Replaces every known `#TOKEN#` in `template` in one pass: a value is never
/// itself expanded, and an unknown `#WORD#` is left as written.
pub fn substitute(template: &str, ctx: &TokenContext) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('#') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let replaced = after
            .find('#')
            .and_then(|close| value(&after[..close], ctx).map(|v| (v, close)));
        match replaced {
            Some((v, close)) => {
                out.push_str(&v);
                rest = &after[close + 1..];
            }
            // The closing '#' may open the next token, as in `a#b#FRAME#`.
            None => {
                out.push('#');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Fills in the tokens of a command; each argument of an argv command on its
/// own, so a value never splits or joins arguments.
pub fn substitute_command(cmd: &Command, ctx: &TokenContext) -> Command {
    match cmd {
        Command::Shell(s) => Command::Shell(substitute(s, ctx)),
        Command::Argv(args) => Command::Argv(args.iter().map(|a| substitute(a, ctx)).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> TokenContext<'static> {
        TokenContext {
            job: "shot010",
            layer: "render",
            number: 5,
            last: 8,
            chunk: "5-8",
            chunk_size: 4,
        }
    }

    #[test]
    fn every_token() {
        let c = ctx();
        assert_eq!(substitute("#FRAME#", &c), "5");
        assert_eq!(substitute("#IFRAME#", &c), "5");
        assert_eq!(substitute("#ZFRAME#", &c), "0005");
        assert_eq!(substitute("#FRAME_START#", &c), "5");
        assert_eq!(substitute("#FRAME_END#", &c), "8");
        assert_eq!(substitute("#FRAMESPEC#", &c), "5-8");
        assert_eq!(substitute("#FRAME_CHUNK#", &c), "4");
        assert_eq!(substitute("#LAYER#", &c), "render");
        assert_eq!(substitute("#JOB#", &c), "shot010");
    }

    #[test]
    fn in_a_command_line() {
        assert_eq!(
            substitute(
                "render -s #FRAME_START# -e #FRAME_END# -o /out/#JOB#.#ZFRAME#.exr",
                &ctx()
            ),
            "render -s 5 -e 8 -o /out/shot010.0005.exr"
        );
        assert_eq!(substitute("#FRAME##FRAME#", &ctx()), "55");
    }

    #[test]
    fn zero_padding() {
        let mut c = ctx();
        for (n, z) in [
            (0, "0000"),
            (42, "0042"),
            (12345, "12345"),
            (-1, "-0001"),
            (-12345, "-12345"),
        ] {
            c.number = n;
            assert_eq!(substitute("#ZFRAME#", &c), z);
        }
        c.number = i64::MIN;
        assert_eq!(substitute("#ZFRAME#", &c), i64::MIN.to_string());
    }

    #[test]
    fn unknown_words_and_stray_hashes_stay() {
        let c = ctx();
        assert_eq!(substitute("#NOPE#", &c), "#NOPE#");
        assert_eq!(substitute("# comment", &c), "# comment");
        assert_eq!(substitute("a#b#FRAME#", &c), "a#b5");
        assert_eq!(substitute("##FRAME##", &c), "#5#");
        assert_eq!(substitute("#frame#", &c), "#frame#");
        assert_eq!(substitute("#", &c), "#");
        assert_eq!(substitute("", &c), "");
        assert_eq!(substitute("né #FRAME# ü", &c), "né 5 ü");
    }

    #[test]
    fn values_are_not_expanded_again() {
        let c = TokenContext {
            job: "#LAYER#",
            ..ctx()
        };
        assert_eq!(substitute("#JOB# #LAYER#", &c), "#LAYER# render");
    }

    #[test]
    fn commands() {
        let c = ctx();
        assert_eq!(
            substitute_command(&Command::Shell("echo #FRAME#".into()), &c),
            Command::Shell("echo 5".into())
        );
        assert_eq!(
            substitute_command(
                &Command::Argv(vec![
                    "render".into(),
                    "#FRAMESPEC#".into(),
                    "a b #LAYER#".into()
                ]),
                &c
            ),
            Command::Argv(vec!["render".into(), "5-8".into(), "a b render".into()])
        );
    }
}
