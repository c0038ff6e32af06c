//! Idle working-set trimming: once the worker has been idle for a while
//! (no frame running, none started or ended), it drops its own mappings of
//! the `kiln` binary's clean pages, so that only what its idle loop runs is
//! mapped back in.
//!
//! Why: the one binary carries the server, the CLI, the scheduler and their
//! libraries, and the kernel maps code in 64 KiB fault-around windows, so
//! the few functions a worker runs, spread over the binary, map most of its
//! `.text` (4.7 of 6 MiB after a thousand frames, more than half the 8 MB
//! target). Those pages are not free: the kernel protects mapped executable
//! pages from reclaim, so a daemon that keeps them mapped keeps memory that
//! frames could have.
//!
//! What: `madvise(MADV_DONTNEED)` on each mapping of the binary's own file
//! that is not writable and whose `/proc/self/smaps` entry counts no
//! anonymous (copy-on-write) page, resident or swapped. Such a mapping
//! holds nothing but the file's pages, which stay in the page cache; the
//! next access maps them again with a minor fault, the same bytes. In a
//! mapping that holds copied pages (relocated RELRO, a debugger's
//! breakpoint, a uprobe) only the pages `/proc/self/pagemap` shows resident
//! and the file's own are dropped, never a copied or swapped one: dropping
//! those would lose what was written. Writable mappings (`.data`, `.bss`)
//! are never touched. Shared libraries are left alone: their pages are
//! mapped by every process anyway. It runs once per idle period, never in a
//! loop, and costs the first frame after it a few hundred microseconds of
//! minor faults at most (`bench/targets.sh` measures that frame's start).
//!
//! Mapped back how: the kernel maps a faulting code page together with its
//! neighbours in the page cache, up to 64 KiB around it, but never past
//! the mapping's own bounds. The idle loop's functions are spread over the
//! binary (the linker lays crates out together, not by use), so 64 KiB
//! windows mapped most of a megabyte more for every few functions the
//! binary grew by. While idle, a dropped mapping is therefore cut into
//! 16 KiB pieces, by giving every other piece another readahead hint
//! (`MADV_RANDOM`: a flag that only affects reading ahead, which code in
//! the page cache never needs), so each fault maps at most 16 KiB. When
//! work comes back, [`rejoin`] makes it one mapping again (a few hundred
//! pieces would otherwise be copied by every fork).

use std::os::unix::fs::MetadataExt;

/// What a trim dropped.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Trimmed {
    pub mappings: usize,
    /// Resident KiB those mappings had.
    pub kb: u64,
    /// The mappings cut into pieces, for [`rejoin`].
    pub cut: Vec<(usize, usize)>,
}

/// The pieces a dropped mapping is cut into while idle.
const PIECE: usize = 16 << 10;

/// Makes each mapping in `cut` one mapping again, as before [`code_pages`]
/// cut it (the kernel merges pieces whose flags are the same again).
pub fn rejoin(cut: &[(usize, usize)]) {
    for &(start, end) in cut {
        // SAFETY: a readahead hint on a range of our own mapping; it
        // changes no content and no protection.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_NORMAL);
        }
    }
}

/// Cuts `start..end` into [`PIECE`]-sized mappings: every other piece gets
/// another readahead hint, and mappings whose flags differ stay apart.
fn cut(start: usize, end: usize) {
    let mut at = start + PIECE;
    while at < end {
        let len = PIECE.min(end - at);
        // SAFETY: as in `rejoin`.
        unsafe {
            libc::madvise(at as *mut libc::c_void, len, libc::MADV_RANDOM);
        }
        at += 2 * PIECE;
    }
}

/// Drops the clean pages of the running binary's read-only mappings.
pub fn code_pages() -> std::io::Result<Trimmed> {
    let exe = std::fs::metadata("/proc/self/exe")?;
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    let dev = exe.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let mut done = Trimmed::default();
    for m in parse(&smaps) {
        let ours = m.inode == exe.ino() && m.dev == (major, minor);
        if !ours || m.writable || !m.private || m.rss_kb == 0 {
            continue;
        }
        // A mapping with copied pages (relocated RELRO): only the pages
        // that are still the file's, page by page.
        let runs = match (m.anonymous_kb, m.swap_kb) {
            (Some(0), Some(0)) => vec![(m.start, m.end)],
            (Some(_), Some(_)) => match file_page_runs(m.start, m.end) {
                Ok(runs) => runs,
                Err(_) => continue,
            },
            _ => continue,
        };
        let whole = runs == [(m.start, m.end)];
        let mut dropped = false;
        for (start, end) in runs {
            // SAFETY: a range of a private mapping of the binary's file
            // that cannot be written, holding none of its own pages
            // (checked just above; it cannot gain one without a write):
            // its content is the file's, which the next access maps again.
            let rc = unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED)
            };
            dropped |= rc == 0;
        }
        if dropped {
            done.mappings += 1;
            done.kb += m.rss_kb - m.anonymous_kb.unwrap_or(0);
            // Only a mapping that is all the file's: one with copied pages
            // is left as it is.
            if whole {
                cut(m.start, m.end);
                done.cut.push((m.start, m.end));
            }
        }
    }
    Ok(done)
}

/// The runs of pages in `start..end` that are resident and the file's own
/// (not copied, not swapped out), from `/proc/self/pagemap`.
fn file_page_runs(start: usize, end: usize) -> std::io::Result<Vec<(usize, usize)>> {
    use std::io::{Read, Seek, SeekFrom};
    const PAGE: usize = 4096;
    const PRESENT: u64 = 1 << 63;
    const SWAPPED: u64 = 1 << 62;
    const FILE_OR_SHARED: u64 = 1 << 61;
    if unsafe { libc::sysconf(libc::_SC_PAGESIZE) } != PAGE as libc::c_long {
        return Ok(Vec::new());
    }
    let mut f = std::fs::File::open("/proc/self/pagemap")?;
    f.seek(SeekFrom::Start((start / PAGE * 8) as u64))?;
    let mut buf = vec![0u8; (end - start) / PAGE * 8];
    f.read_exact(&mut buf)?;
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (i, e) in buf.chunks_exact(8).enumerate() {
        let e = u64::from_ne_bytes(e.try_into().expect("8 bytes"));
        if e & (PRESENT | SWAPPED | FILE_OR_SHARED) != PRESENT | FILE_OR_SHARED {
            continue;
        }
        let at = start + i * PAGE;
        match runs.last_mut() {
            Some(run) if run.1 == at => run.1 = at + PAGE,
            _ => runs.push((at, at + PAGE)),
        }
    }
    Ok(runs)
}

/// One mapping of `/proc/<pid>/smaps`, as far as trimming needs it.
#[derive(Debug, Default, PartialEq)]
struct Mapping {
    start: usize,
    end: usize,
    writable: bool,
    private: bool,
    dev: (u32, u32),
    inode: u64,
    rss_kb: u64,
    /// `None` where the kernel does not say: never trimmed then.
    anonymous_kb: Option<u64>,
    /// Copied pages swapped out: as much the mapping's own as resident ones.
    swap_kb: Option<u64>,
}

fn parse(smaps: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = Vec::new();
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let Some(first) = words.next() else { continue };
        if let Some((start, end)) = first.split_once('-') {
            let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            ) else {
                continue;
            };
            let perms = words.next().unwrap_or("");
            let _offset = words.next();
            let dev = words
                .next()
                .and_then(|d| d.split_once(':'))
                .and_then(|(a, b)| {
                    Some((
                        u32::from_str_radix(a, 16).ok()?,
                        u32::from_str_radix(b, 16).ok()?,
                    ))
                });
            let inode = words.next().and_then(|i| i.parse().ok());
            let (Some(dev), Some(inode)) = (dev, inode) else {
                continue;
            };
            out.push(Mapping {
                start,
                end,
                writable: perms.as_bytes().get(1) == Some(&b'w'),
                private: perms.as_bytes().get(3) == Some(&b'p'),
                dev,
                inode,
                ..Mapping::default()
            });
            continue;
        }
        let Some(m) = out.last_mut() else { continue };
        let kb = || words.clone().next().and_then(|v| v.parse::<u64>().ok());
        match first {
            "Rss:" => m.rss_kb = kb().unwrap_or(0),
            "Anonymous:" => m.anonymous_kb = kb(),
            "Swap:" => m.swap_kb = kb(),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_smaps() {
        let smaps = "\
00400000-00401000 r--p 00000000 fd:01 1234 /usr/bin/kiln
Rss:                   4 kB
Shared_Dirty:          4 kB
Anonymous:             0 kB
Swap:                  0 kB
VmFlags: rd mr mw me dw
00401000-00a00000 r-xp 00001000 fd:01 1234 /usr/bin/kiln (deleted)
Rss:                4688 kB
Anonymous:             0 kB
Swap:                  0 kB
01000000-01010000 rw-p 00c00000 fd:01 1234 /usr/bin/kiln
Rss:                  64 kB
Private_Dirty:        60 kB
Anonymous:            60 kB
Swap:                  4 kB
7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0                          [stack]
Rss:                  12 kB
";
        let m = parse(smaps);
        assert_eq!(m.len(), 4);
        assert_eq!(
            m[1],
            Mapping {
                start: 0x401000,
                end: 0xa00000,
                writable: false,
                private: true,
                dev: (0xfd, 1),
                inode: 1234,
                rss_kb: 4688,
                anonymous_kb: Some(0),
                swap_kb: Some(0),
            }
        );
        assert!(m[2].writable && m[2].anonymous_kb == Some(60) && m[2].swap_kb == Some(4));
        assert_eq!((m[3].inode, m[3].anonymous_kb), (0, None));
    }

    /// The test binary trims its own code and goes on running it.
    #[test]
    fn trims_the_running_binary_and_runs_on() {
        // Resident and copied KiB of the binary's read-only mappings.
        let resident = || {
            let ino = std::fs::metadata("/proc/self/exe").unwrap().ino();
            let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
            parse(&smaps)
                .iter()
                .filter(|m| m.inode == ino && !m.writable)
                .fold((0, 0), |(r, a), m| {
                    (r + m.rss_kb, a + m.anonymous_kb.unwrap_or(0))
                })
        };
        let (before, copied) = resident();
        let t = code_pages().unwrap();
        assert!(t.mappings >= 1 && t.kb > 0, "{t:?}");
        let (after, still_copied) = resident();
        assert!(after < before, "{before} KiB before, {after} KiB after");
        // The relocated pages of this (position-independent) test binary
        // are kept: calls through them still work.
        assert_eq!(copied, still_copied);
        let greet: Box<dyn Fn(&str) -> String> = Box::new(|w| format!("hello {w}"));
        assert_eq!(greet("again"), "hello again");
        assert_eq!(parses_back(), 4);
        rejoin(&t.cut);
    }

    /// The binary's mappings as `/proc/self/maps` lists them.
    fn own_mappings() -> usize {
        let ino = std::fs::metadata("/proc/self/exe").unwrap().ino();
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        parse(&smaps).iter().filter(|m| m.inode == ino).count()
    }

    #[test]
    fn a_cut_mapping_faults_in_pieces_and_is_one_again_when_rejoined() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), vec![7u8; 1 << 20]).unwrap();
        let f = std::fs::File::open(file.path()).unwrap();
        use std::os::fd::AsRawFd;
        // SAFETY: a fresh read-only private mapping of our own file.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                1 << 20,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                f.as_raw_fd(),
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED);
        let (start, end) = (base as usize, base as usize + (1 << 20));
        let ours = || {
            let mut n = 0;
            let mut resident = 0;
            for m in parse(&std::fs::read_to_string("/proc/self/smaps").unwrap()) {
                if m.start >= start && m.end <= end {
                    n += 1;
                    resident += m.rss_kb;
                }
            }
            (n, resident)
        };
        let touch = |at: usize| unsafe { std::ptr::read_volatile((start + at) as *const u8) };
        cut(start, end);
        assert_eq!(ours().0, 64, "1 MiB in 16 KiB pieces");
        for at in (0..1 << 20).step_by(256 << 10) {
            assert_eq!(touch(at + 4096), 7);
        }
        let (_, resident) = ours();
        assert!(resident <= 4 * 16, "{resident} KiB for four faults");
        rejoin(&[(start, end)]);
        assert_eq!(ours().0, 1, "one mapping again");
        assert_eq!(touch(12345), 7);
        unsafe { libc::munmap(base, 1 << 20) };
        assert!(own_mappings() >= 1);
    }

    #[inline(never)]
    fn parses_back() -> usize {
        parse("1-2 r-xp 0 00:01 5 x\nRss: 4 kB\n").len() * 4
    }
}
