//! Turns a prepared frame into the exec the child performs: program path,
//! argv and environment as C strings, all allocated up front because the
//! child of a `CLONE_VM` spawn may not allocate; and the wording of a failed
//! spawn in terms of the job's own command.

use super::prepare::Prepared;
use super::proc::nul_terminated;
use super::{spawn, Inner, Launch};
use kiln_core::model::Command;
use std::ffi::{CString, OsStr};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

/// What the child is given: everything allocated before the clone, because
/// the child may not allocate.
pub(super) struct Exec {
    pub(super) path: CString,
    _argv: Vec<CString>,
    pub(super) argv_ptrs: Vec<*const libc::c_char>,
    _envp: Vec<CString>,
    pub(super) envp_ptrs: Vec<*const libc::c_char>,
    pub(super) cwd: CString,
}

impl Exec {
    /// The environment, `KEY=value` entries each ended by a NUL: how a frame
    /// supervisor is handed it (see `shim`).
    pub(super) fn env_file(&self) -> Vec<u8> {
        self._envp
            .iter()
            .flat_map(|kv| kv.as_bytes_with_nul().iter().copied())
            .collect()
    }

    /// The argument vector, program name first.
    pub(super) fn argv(&self) -> impl Iterator<Item = &[u8]> {
        self._argv.iter().map(|a| a.as_bytes())
    }
}

pub(super) fn build_exec(inner: &Inner, l: &Launch, p: &Prepared) -> Result<Exec, String> {
    let args: Vec<&OsStr> = match &l.command {
        Command::Shell(s) => vec![OsStr::new("/bin/sh"), OsStr::new("-c"), OsStr::new(s)],
        Command::Argv(v) if v.is_empty() => return Err("empty command".into()),
        Command::Argv(v) => v.iter().map(OsStr::new).collect(),
    };
    let mut env = Env::default();
    env.set(b"PATH", inner.base_path.as_bytes())?;
    // Under a supervisor, which looks the account up, it adds these.
    if let Some(k) = &p.identity.known {
        if let Some(home) = &k.home {
            env.set(b"HOME", home.as_bytes())?;
        }
        env.set(b"USER", k.name.as_bytes())?;
        env.set(b"LOGNAME", k.name.as_bytes())?;
        if let Some(shell) = &k.shell {
            env.set(b"SHELL", shell.as_bytes())?;
        }
    }
    if let Some(lang) = &inner.lang {
        env.set(b"LANG", lang.as_bytes())?;
    }
    for (k, v) in &l.env {
        env.set(k.as_bytes(), v.as_bytes())?;
    }
    if !p.gpus.is_empty() {
        let list: Vec<String> = p.gpus.iter().map(u32::to_string).collect();
        let list = list.join(",");
        env.set(b"KILN_GPUS", list.as_bytes())?;
        env.set(b"CUDA_VISIBLE_DEVICES", list.as_bytes())?;
    }
    let path = resolve_program(args[0], env.get(b"PATH"), &p.cwd)?;
    let argv: Vec<CString> = args
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|_| "the command contains a NUL byte".to_owned())?;
    let cwd = CString::new(p.cwd.as_os_str().as_bytes())
        .map_err(|_| format!("bad working directory {}", p.cwd.display()))?;
    let envp: Vec<CString> = env.0.into_iter().map(|(_, kv)| kv).collect();
    Ok(Exec {
        path,
        argv_ptrs: nul_terminated(&argv),
        _argv: argv,
        envp_ptrs: nul_terminated(&envp),
        _envp: envp,
        cwd,
    })
}

/// The child's environment; a later `set` of a name replaces the earlier.
#[derive(Default)]
struct Env(Vec<(Vec<u8>, CString)>);

impl Env {
    fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), String> {
        if key.is_empty() || key.contains(&b'=') || key.contains(&0) || value.contains(&0) {
            return Err(format!(
                "bad environment variable {:?}",
                String::from_utf8_lossy(key)
            ));
        }
        let mut kv = Vec::with_capacity(key.len() + value.len() + 1);
        kv.extend_from_slice(key);
        kv.push(b'=');
        kv.extend_from_slice(value);
        let kv = CString::new(kv).expect("NUL bytes rejected above");
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = kv,
            None => self.0.push((key.to_vec(), kv)),
        }
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(k, kv)| &kv.as_bytes()[k.len() + 1..])
    }
}

/// Finds a bare program name in the frame's PATH, as `execvp` would; done
/// here because the child may not allocate. A name with a slash is used as
/// given (relative names then start from the frame's cwd).
fn resolve_program(program: &OsStr, path: Option<&[u8]>, cwd: &Path) -> Result<CString, String> {
    use std::os::unix::fs::PermissionsExt;
    let bytes = program.as_bytes();
    if bytes.is_empty() {
        return Err("empty command".into());
    }
    if bytes.contains(&b'/') {
        return CString::new(bytes).map_err(|_| "the command contains a NUL byte".into());
    }
    for dir in path
        .unwrap_or(b"/usr/local/bin:/usr/bin:/bin")
        .split(|&b| b == b':')
    {
        let dir = Path::new(OsStr::from_bytes(if dir.is_empty() { b"." } else { dir }));
        let candidate = cwd.join(dir).join(program);
        let executable = std::fs::metadata(&candidate)
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
        if executable {
            return CString::new(candidate.into_os_string().into_vec())
                .map_err(|_| "the command contains a NUL byte".into());
        }
    }
    Err(format!(
        "cannot run {:?}: command not found in PATH",
        program.to_string_lossy()
    ))
}

pub(super) fn spawn_failure(
    command: &Command,
    exec: &Exec,
    step: spawn::Step,
    e: std::io::Error,
) -> String {
    let program = match command {
        Command::Shell(_) => "/bin/sh".to_owned(),
        Command::Argv(v) => v[0].clone(),
    };
    match step {
        spawn::Step::Exec => format!(
            "cannot run {program:?} ({}): {e}",
            exec.path.to_string_lossy()
        ),
        spawn::Step::Chdir => format!(
            "cannot enter working directory {}: {e}",
            exec.cwd.to_string_lossy()
        ),
        step => format!("cannot run {program:?}: {}: {e}", step.name()),
    }
}
