//! Process creation with `clone(CLONE_VM | CLONE_VFORK)`, the way glibc's
//! `posix_spawn` does it, plus the two steps `posix_spawn` cannot do: the
//! user switch and the parent-death signal. Both otherwise need std's
//! `pre_exec`, which forks; a fork copies the worker's page tables and then
//! makes each page it writes fault and flush the TLB of every CPU running a
//! worker thread. Measured with 1,000 `true` frames on a 2-CPU VM, a fork
//! took ~180 µs of the spawner's CPU per frame (~370 µs for the whole runner
//! against ~130 µs here) and the run took ~40% longer; this clone takes
//! ~30 µs.
//!
//! The child runs in the worker's memory, on its own small stack, until it
//! execs. So it calls only plain system calls: no allocation, no locks, and
//! none of glibc's `setuid`-family wrappers, which in a threaded process
//! signal every thread to change ids too: here those threads are the
//! worker's.

use std::cell::RefCell;
use std::ffi::CStr;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};

pub(super) struct Child<'a> {
    pub path: &'a CStr,
    /// NULL-terminated.
    pub argv: &'a [*const libc::c_char],
    /// NULL-terminated.
    pub envp: &'a [*const libc::c_char],
    pub cwd: &'a CStr,
    /// Descriptors above 2; the log serves as stdout and stderr.
    pub stdin: RawFd,
    pub stdout: RawFd,
    /// `(uid, gid, groups)` to switch to.
    pub ids: Option<(libc::uid_t, libc::gid_t, &'a [libc::gid_t])>,
    /// `cgroup.procs` files (open for writing) the child joins, so that
    /// everything it starts is in its cgroup from the first instruction.
    pub cgroups: &'a [RawFd],
    /// Becomes fd 3 of the child (a frame supervisor's report pipe).
    pub fd3: Option<RawFd>,
    /// A frame supervisor rather than a frame: its own session, so that it
    /// outlives the worker and is out of reach of signals to the worker's
    /// group, and no parent-death signal.
    pub detach: bool,
}

/// The step of the child's setup that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    Clone = 1,
    Stdio,
    Setpgid,
    Cgroup,
    Setgroups,
    Setgid,
    Setuid,
    Chdir,
    Pdeathsig,
    Exec,
    /// A frame supervisor reading the frame's environment (never the child).
    Env,
    /// A frame supervisor looking up the job's user (errno 0: no such
    /// user), refusing root, listing the user's groups, giving it the
    /// scratch directory (see `account`).
    User,
    Root,
    Groups,
    Chown,
}

impl Step {
    pub(super) fn name(self) -> &'static str {
        match self {
            Step::Clone => "clone",
            Step::Stdio => "setting up stdio",
            Step::Setpgid => "setpgid",
            Step::Cgroup => "joining its cgroup",
            Step::Setgroups => "setgroups",
            Step::Setgid => "setgid",
            Step::Setuid => "setuid",
            Step::Chdir => "chdir",
            Step::Pdeathsig => "prctl(PR_SET_PDEATHSIG)",
            Step::Exec => "exec",
            Step::Env => "reading its environment",
            Step::User => "looking up its user",
            Step::Root => "refusing to run as root",
            Step::Groups => "listing its user's groups",
            Step::Chown => "giving its user the scratch directory",
        }
    }

    pub(super) fn from_i32(v: i32) -> Step {
        [
            Step::Stdio,
            Step::Setpgid,
            Step::Cgroup,
            Step::Setgroups,
            Step::Setgid,
            Step::Setuid,
            Step::Chdir,
            Step::Pdeathsig,
            Step::Exec,
            Step::Env,
            Step::User,
            Step::Root,
            Step::Groups,
            Step::Chown,
        ]
        .into_iter()
        .find(|s| *s as i32 == v)
        .unwrap_or(Step::Exec)
    }
}

/// Shared with the child, which writes `step` and `errno` if it fails.
struct Shared<'a> {
    child: &'a Child<'a>,
    parent: libc::pid_t,
    step: AtomicI32,
    errno: AtomicI32,
}

const STACK_SIZE: usize = 64 * 1024;

/// The child's stack, one per spawning thread, reused: mapping one per
/// spawn would flush TLBs on unmap.
struct Stack {
    base: *mut libc::c_void,
}

impl Stack {
    fn new() -> io::Result<Stack> {
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                STACK_SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // A guard page: an overflow faults instead of corrupting memory.
        unsafe { libc::mprotect(base, 4096, libc::PROT_NONE) };
        Ok(Stack { base })
    }

    fn top(&self) -> *mut libc::c_void {
        // 16-byte aligned, as the ABI wants.
        unsafe { self.base.cast::<u8>().add(STACK_SIZE).cast() }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        unsafe { libc::munmap(self.base, STACK_SIZE) };
    }
}

thread_local! {
    static STACK: RefCell<Option<Stack>> = const { RefCell::new(None) };
}

/// Starts `c` in a new process group (or session) of its own; returns its
/// pid once it has exec'd. The caller reaps it.
pub(super) fn spawn(c: &Child<'_>) -> Result<libc::pid_t, (Step, io::Error)> {
    STACK.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = Some(Stack::new().map_err(|e| (Step::Clone, e))?);
        }
        let stack = cell.as_ref().expect("made above");
        let shared = Shared {
            child: c,
            parent: unsafe { libc::getpid() },
            step: AtomicI32::new(0),
            errno: AtomicI32::new(0),
        };
        unsafe {
            // No signal handler may run in the child: it would run the
            // worker's code on the child's stack, in the worker's memory.
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
            // Returns once the child has exec'd or exited.
            let pid = libc::clone(
                child_main,
                stack.top(),
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                (&shared as *const Shared<'_>).cast_mut().cast(),
            );
            let clone_error = io::Error::last_os_error();
            libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            if pid < 0 {
                return Err((Step::Clone, clone_error));
            }
            let step = shared.step.load(Ordering::SeqCst);
            if step != 0 {
                let _ = super::proc::wait4(pid, 0);
                let errno = shared.errno.load(Ordering::SeqCst);
                return Err((Step::from_i32(step), io::Error::from_raw_os_error(errno)));
            }
            Ok(pid)
        }
    })
}

extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the parent's `Shared`; the parent is suspended
    // (CLONE_VFORK) until this process execs or exits, so it outlives
    // every use here.
    let sh = unsafe { &*(arg as *const Shared<'_>) };
    let c = sh.child;
    unsafe {
        // The worker's handlers (and the SIGPIPE it ignores) are no
        // business of a frame: every signal starts at its default. The
        // handler table is the child's own copy (no CLONE_SIGHAND).
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        for sig in 1..65 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
        let grouped = if c.detach {
            libc::setsid() >= 0
        } else {
            libc::setpgid(0, 0) == 0
        };
        if !grouped {
            fail(sh, Step::Setpgid);
        }
        // Before the user switch: joining takes root.
        for &fd in c.cgroups {
            if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                fail(sh, Step::Cgroup);
            }
        }
        if libc::dup2(c.stdin, 0) < 0 || libc::dup2(c.stdout, 1) < 0 || libc::dup2(c.stdout, 2) < 0
        {
            fail(sh, Step::Stdio);
        }
        if let Some(fd) = c.fd3 {
            if libc::dup2(fd, 3) < 0 {
                fail(sh, Step::Stdio);
            }
        }
        if let Some((uid, gid, groups)) = c.ids {
            // Raw system calls: they change this process only.
            if libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) != 0 {
                fail(sh, Step::Setgroups);
            }
            if libc::syscall(libc::SYS_setgid, gid) != 0 {
                fail(sh, Step::Setgid);
            }
            if libc::syscall(libc::SYS_setuid, uid) != 0 {
                fail(sh, Step::Setuid);
            }
        }
        // As the user, so that its permissions apply.
        if libc::chdir(c.cwd.as_ptr()) != 0 {
            fail(sh, Step::Chdir);
        }
        // After the id change, which would clear it.
        if !c.detach
            && libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
        {
            fail(sh, Step::Pdeathsig);
        }
        if !c.detach && libc::getppid() != sh.parent {
            // The worker died before the signal was armed.
            *libc::__errno_location() = libc::ESRCH;
            fail(sh, Step::Pdeathsig);
        }
        let empty: libc::sigset_t = {
            let mut s = std::mem::zeroed();
            libc::sigemptyset(&mut s);
            s
        };
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::execve(c.path.as_ptr(), c.argv.as_ptr(), c.envp.as_ptr());
        fail(sh, Step::Exec)
    }
}

fn fail(sh: &Shared<'_>, step: Step) -> ! {
    unsafe {
        sh.errno.store(*libc::__errno_location(), Ordering::SeqCst);
        sh.step.store(step as i32, Ordering::SeqCst);
        libc::_exit(127)
    }
}
