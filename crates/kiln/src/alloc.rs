//! The allocator and its settings per role, fixed before anything is
//! allocated.
//!
//! The binary's allocator is mimalloc, for the server's sake: its hot paths
//! (scheduling passes, batch commits) build and drop many short-lived
//! buffers, which glibc's malloc made several times slower (ARCHITECTURE,
//! Build notes). By default mimalloc commits each 1 GiB arena it reserves
//! at once and asks for transparent huge pages on it, which suits the
//! server; but a worker that allocates a few MB then touches several 2 MiB
//! pages, and idles at 13-16 MB instead of 8. So a worker commits arena
//! memory as it uses it. The setting must be made before the first
//! allocation reserves the first arena, and Rust's runtime allocates before
//! `main`: it is made from the process's constructors (`.init_array`), which
//! the C library runs before the runtime starts and which get `argv`.

use std::ffi::{c_char, c_int, c_long, CStr};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

// mimalloc's own API (`libmimalloc-sys` links it; its Rust binding of this
// function needs a feature that pulls in another crate).
extern "C" {
    fn mi_option_set(option: c_int, value: c_long);
}

/// `mi_option_arena_eager_commit` in `mimalloc.h` (v2).
const MI_OPTION_ARENA_EAGER_COMMIT: c_int = 4;
/// `mi_option_purge_delay`: how long freed pages wait before they are
/// given back (10 ms by default). The wait ends only at a later call into
/// the allocator, and an idle worker makes few: pages freed as it settles
/// (its join's connection, the CLI's parse) stayed resident, ~230 KiB.
const MI_OPTION_PURGE_DELAY: c_int = 15;

// glibc calls `.init_array` entries with (argc, argv, envp); mimalloc's own
// constructor has run by then (it has a priority, this entry has none).
#[used]
#[unsafe(link_section = ".init_array")]
static CONFIGURE: extern "C" fn(c_int, *const *const c_char, *const *const c_char) = configure;

extern "C" fn configure(argc: c_int, argv: *const *const c_char, _envp: *const *const c_char) {
    if argv.is_null() {
        return;
    }
    // SAFETY: the C library passes the program's own argc/argv: `argc`
    // valid NUL-terminated strings. Nothing here allocates.
    let args = (1..argc.max(0) as usize)
        .map(|i| unsafe { *argv.add(i) })
        .take_while(|p| !p.is_null())
        .map(|p| unsafe { CStr::from_ptr(p) }.to_bytes());
    if is_worker(args) {
        // SAFETY: sets a plain integer option, read when mimalloc next
        // reserves an arena.
        unsafe {
            mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
            mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        }
    }
}

/// Whether the arguments (past the program's name) run `kiln worker` or a
/// frame's supervisor: the first that is not a global option (`--server`,
/// `--ca`, `--token`).
fn is_worker<'a>(mut args: impl Iterator<Item = &'a [u8]>) -> bool {
    const GLOBAL: [&[u8]; 3] = [b"--server", b"--ca", b"--token"];
    while let Some(a) = args.next() {
        match a {
            a if GLOBAL.contains(&a) => {
                args.next();
            }
            a if GLOBAL
                .iter()
                .any(|g| a.starts_with(g) && a.get(g.len()) == Some(&b'=')) => {}
            // A frame's supervisor is as small a daemon as the worker.
            a => return a == b"worker" || a == b"frame-shim",
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::is_worker;

    fn worker(cmdline: &[u8]) -> bool {
        is_worker(cmdline.split(|&b| b == b' ').skip(1))
    }

    #[test]
    fn the_role_is_the_first_word_past_the_server_option() {
        assert!(worker(b"kiln worker --name w0"));
        assert!(worker(b"/usr/bin/kiln --server http://f:7676 worker"));
        assert!(worker(b"kiln --server=http://f:7676 worker"));
        assert!(worker(b"kiln --ca /etc/kiln/ca.pem --token=t worker"));
        assert!(worker(b"/proc/self/exe frame-shim 17"));
        assert!(!worker(b"kiln server --data worker"));
        assert!(!worker(b"kiln --server worker jobs"));
        assert!(!worker(b"kiln"));
    }
}
