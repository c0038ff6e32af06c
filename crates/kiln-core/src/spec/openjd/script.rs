//! The shell script that runs one task of a step as its own OpenJD session:
//! make the session directory, enter the job's then the step's
//! environments, run the task, exit the entered environments in reverse
//! order (also when something failed), and end with the task's result.
//! Every task's parameter values are in the script; the frame number picks.

use super::fmt::{quote, resolve, shell_word, Scope};
use super::model::{Action, EmbeddedFile, Environment};
use super::params::scalar;
use super::space::Tasks;
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::fmt::Write;

/// OpenJD's default timeout of an `onExit` action, in seconds.
const EXIT_TIMEOUT_S: u64 = 300;

/// Writes bash; `$1` is the task's number, 1-based.
pub struct Script {
    head: String,
    body: String,
    exits: Vec<String>,
}

impl Script {
    pub fn new(tasks: &Tasks) -> Script {
        let mut head = format!(
            "set -u\ncase \"$1\" in ''|*[!0-9]*) i=-1 ;; *) i=$(( $1 - 1 )) ;; esac\n\
             if [ \"$i\" -lt 0 ] || [ \"$i\" -ge {} ]; then echo \"kiln: this step has no task $1\" >&2; exit 2; fi\n",
            tasks.count
        );
        head.push_str(&tasks.script());
        head.push_str(concat!(
            "wd=$(mktemp -d \"${TMPDIR:-/tmp}/kiln-openjd-session.XXXXXX\") || exit 1\n",
            "cd \"$wd\" || exit 1\n",
            "printf '%s\\n' '{\"version\":\"pathmapping-1.0\",\"path_mapping_rules\":[]}' > \"$wd/path-mapping.json\"\n",
            "entered=0\n",
            // onEnter's stdout may set (`openjd_env: K=V`) or unset
            // (`openjd_unset_env: K`) variables for every later action.
            "kiln_enter() {\n",
            "  \"$@\" > \"$wd/.enter-out\"; r=$?\n",
            "  cat \"$wd/.enter-out\"\n",
            "  while IFS= read -r l; do case \"$l\" in\n",
            "    'openjd_env: '*) kv=${l#openjd_env: }; export \"${kv%%=*}=${kv#*=}\" ;;\n",
            "    'openjd_unset_env: '*) unset \"${l#openjd_unset_env: }\" ;;\n",
            "  esac; done < \"$wd/.enter-out\"\n",
            "  return $r\n",
            "}\n",
        ));
        Script {
            head,
            body: String::new(),
            exits: Vec::new(),
        }
    }

    /// Enters an environment: its variables, its files, its onEnter. `at`
    /// is its field path.
    pub fn environment(
        &mut self,
        at: &str,
        env: &Environment,
        params: &BTreeMap<String, String>,
    ) -> Result<()> {
        let n = self.exits.len() + 1;
        let files = file_paths(
            &format!("{at}.script.embeddedFiles"),
            env.script.as_ref().map_or(&[][..], |s| &s.embedded_files),
            &format!("env{n}"),
        )?;
        let scope = Scope {
            params,
            env_files: Some(&files),
            session: true,
            ..Scope::new(params)
        };
        for (k, v) in &env.variables {
            if !super::params::is_identifier(k) {
                return Err(Error::spec(
                    format!("{at}.variables.{k}"),
                    "is not a variable name; use letters, digits or '_', not starting with a digit",
                ));
            }
            let parts = resolve(&format!("{at}.variables.{k}"), v, &scope)?;
            let _ = writeln!(self.body, "export {k}={}", shell_word(&parts));
        }
        if let Some(s) = &env.script {
            self.files(
                &format!("{at}.script.embeddedFiles"),
                &s.embedded_files,
                &files,
                &scope,
            )?;
            if let Some(a) = &s.actions.on_enter {
                let cmd = action(&format!("{at}.script.actions.onEnter"), a, &scope, None)?;
                let _ = writeln!(self.body, "kiln_enter {cmd} || finish $?");
            }
        }
        let exit = match env.script.as_ref().and_then(|s| s.actions.on_exit.as_ref()) {
            Some(a) => action(
                &format!("{at}.script.actions.onExit"),
                a,
                &scope,
                Some(EXIT_TIMEOUT_S),
            )?,
            None => ":".into(),
        };
        self.exits.push(exit);
        let _ = writeln!(self.body, "entered={n}");
        Ok(())
    }

    /// The task itself, then the whole script.
    pub fn finish(
        mut self,
        at: &str,
        run: &Action,
        files: &[EmbeddedFile],
        params: &BTreeMap<String, String>,
        task_params: &[String],
    ) -> Result<String> {
        let paths = file_paths(&format!("{at}.script.embeddedFiles"), files, "task")?;
        let scope = Scope {
            params,
            task_params: Some(task_params),
            task_files: Some(&paths),
            session: true,
            ..Scope::new(params)
        };
        self.files(&format!("{at}.script.embeddedFiles"), files, &paths, &scope)?;
        let cmd = action(&format!("{at}.script.actions.onRun"), run, &scope, None)?;
        let _ = writeln!(self.body, "{cmd}\nfinish $?");
        // Exit actions run in reverse order whatever happened; the frame
        // ends with the task's status, or an exit action's if the task
        // succeeded and that failed (the session failed).
        let mut out = self.head;
        out.push_str("finish() {\n  rc=$1\n  trap - TERM INT\n");
        for (i, exit) in self.exits.iter().enumerate().rev() {
            let _ = writeln!(out, "  if [ \"$entered\" -ge {} ]; then {exit} || {{ e=$?; [ \"$rc\" -eq 0 ] && rc=$e; }}; fi", i + 1);
        }
        out.push_str("  cd / && rm -rf \"$wd\"\n  exit \"$rc\"\n}\ntrap 'finish 143' TERM\ntrap 'finish 130' INT\n");
        out.push_str(&self.body);
        Ok(out)
    }

    fn files(
        &mut self,
        at: &str,
        files: &[EmbeddedFile],
        paths: &BTreeMap<String, String>,
        scope: &Scope,
    ) -> Result<()> {
        for (i, f) in files.iter().enumerate() {
            let data = resolve(&format!("{at}[{i}].data"), &f.data, scope)?;
            let path = format!("\"$wd\"/{}", quote(&paths[&f.name]));
            let _ = writeln!(
                self.body,
                "mkdir -p \"$(dirname {path})\" && printf '%s' {} > {path} || finish $?",
                shell_word(&data)
            );
            let mode = if f.runnable { "700" } else { "600" };
            let _ = writeln!(self.body, "chmod {mode} {path}");
        }
        Ok(())
    }
}

/// Where each embedded file goes, under the session directory.
fn file_paths(at: &str, files: &[EmbeddedFile], dir: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (i, f) in files.iter().enumerate() {
        if !super::params::is_identifier(&f.name) {
            return Err(Error::spec(
                format!("{at}[{i}].name"),
                format!(
                    "{:?} is not a file name for Task.File/Env.File; use letters, digits or '_'",
                    f.name
                ),
            ));
        }
        if f.kind != "TEXT" {
            return Err(Error::spec(
                format!("{at}[{i}].type"),
                format!(
                    "{:?} is not a file type; OpenJD 2023-09 has only TEXT",
                    f.kind
                ),
            ));
        }
        let name = match &f.filename {
            Some(n) if n.is_empty() || n.contains('/') || n == "." || n == ".." => {
                return Err(Error::spec(
                    format!("{at}[{i}].filename"),
                    format!("{n:?} is not a file name; give a name without '/'"),
                ))
            }
            Some(n) => n.clone(),
            None => format!("{}.embedded", f.name),
        };
        if out
            .insert(f.name.clone(), format!("{dir}/{name}"))
            .is_some()
        {
            return Err(Error::spec(
                format!("{at}[{i}].name"),
                format!("{:?} is the name of two files", f.name),
            ));
        }
    }
    Ok(out)
}

/// An action as one shell command: its command and arguments, run in a
/// `timeout` when it has one. On a timeout, `TERMINATE` kills the action
/// at once; `NOTIFY_THEN_TERMINATE` sends SIGTERM, then SIGKILL after the
/// notify period. The notice goes to the action's process once (an inner
/// `timeout --foreground`: a plain `timeout` signals its child and then
/// its whole group, so a shell trapping TERM would hear it twice); the
/// kill goes to every process of the action (the outer `timeout`).
fn action(at: &str, a: &Action, scope: &Scope, default_timeout: Option<u64>) -> Result<String> {
    let mut words = vec![shell_word(&resolve(
        &format!("{at}.command"),
        &a.command,
        scope,
    )?)];
    if a.command.trim().is_empty() {
        return Err(Error::spec(
            format!("{at}.command"),
            "is empty; give the program to run",
        ));
    }
    for (i, arg) in a.args.iter().enumerate() {
        let text = scalar(arg)
            .ok_or_else(|| Error::spec(format!("{at}.args[{i}]"), "must be a string"))?;
        words.push(shell_word(&resolve(
            &format!("{at}.args[{i}]"),
            &text,
            scope,
        )?));
    }
    let positive = |f: &str, v: &serde_json::Value| -> Result<u64> {
        match scalar(v).and_then(|s| s.trim().parse::<u64>().ok()) {
            Some(n) if n >= 1 => Ok(n),
            _ => Err(Error::spec(
                format!("{at}.{f}"),
                "must be a whole number of seconds, at least 1",
            )),
        }
    };
    let timeout = match &a.timeout {
        Some(t) => Some(positive("timeout", t)?),
        None => default_timeout,
    };
    // The `timeout(1)` words before the command, given the timeout.
    let signal: Box<dyn Fn(u64) -> String> = match &a.cancelation {
        None => Box::new(|t| format!("timeout -s KILL {t}")),
        Some(c) => match c.mode.as_str() {
            "TERMINATE" => {
                if c.notify_period_in_seconds.is_some() {
                    return Err(Error::spec(
                        format!("{at}.cancelation.notifyPeriodInSeconds"),
                        "applies only to mode NOTIFY_THEN_TERMINATE",
                    ));
                }
                Box::new(|t| format!("timeout -s KILL {t}"))
            }
            "NOTIFY_THEN_TERMINATE" => {
                let period = match &c.notify_period_in_seconds {
                    Some(p) => positive("cancelation.notifyPeriodInSeconds", p)?.min(600),
                    None if default_timeout.is_some() => 30,
                    None => 120,
                };
                Box::new(move |t| {
                    format!(
                        "timeout -s KILL {} timeout --foreground -s TERM {t}",
                        t.saturating_add(period)
                    )
                })
            }
            m => {
                return Err(Error::spec(
                    format!("{at}.cancelation.mode"),
                    format!("{m:?} is not TERMINATE or NOTIFY_THEN_TERMINATE"),
                ))
            }
        },
    };
    let cmd = words.join(" ");
    Ok(match timeout {
        Some(t) => format!("{} {cmd}", signal(t)),
        None => cmd,
    })
}
