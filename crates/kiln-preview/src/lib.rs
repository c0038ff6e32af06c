//! Looks at what a frame wrote: each output its layer declared is found (or
//! not), read as an image (PNG, JPEG, TIFF or OpenEXR), measured for its
//! brightness and shrunk to a small JPEG the server keeps as its preview.
//!
//! Blocking and CPU-bound (an EXR of a 4K frame takes a good part of a
//! second): run it on the blocking pool. Judging what was found (missing,
//! black, a flicker) is `kiln_core::output`'s, not this crate's.
//!
//! A crate of its own, behind one non-generic call, so the worker knows
//! nothing of image formats (and the image crates stay out of its build).

use image::{DynamicImage, ImageReader, Limits};
use kiln_core::link::FoundOutput;
use kiln_core::output::{OutputCheck, OutputState, BLACK};
use std::io::{BufReader, Cursor};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The longest side of a thumbnail, in pixels.
pub const THUMB: u32 = 256;
/// Files larger than this are not read (a preview is not worth the IO).
const MAX_FILE: u64 = 2 << 30;
/// The most memory one decode may take.
const MAX_ALLOC: u64 = 512 << 20;

/// Whom to read as: the frame's user, its group and groups.
pub type Ids = (u32, u32, Vec<u32>);

/// Checks each output as the frame's user would read it (`ids`; `None`:
/// as this process, which ran the frame as itself), on a thread of its
/// own whose file-system identity is that user's: a worker running as
/// root never reads, nor tells the existence of, what the frame's user
/// could not. `path` is as the frame named it, `full` where it is on this
/// host (relative paths resolved against the frame's directory).
pub fn check_all_as(outputs: Vec<(String, PathBuf)>, ids: Option<Ids>) -> Vec<FoundOutput> {
    let paths: Vec<String> = outputs.iter().map(|(p, _)| p.clone()).collect();
    let run = std::thread::Builder::new()
        .name("kiln-preview".into())
        .spawn(move || {
            if let Some(ids) = &ids {
                become_reader(ids)?;
            }
            Ok(outputs.iter().map(|(p, full)| check(p, full)).collect())
        });
    let found: std::io::Result<Vec<FoundOutput>> = match run {
        Ok(t) => t
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the preview thread panicked"))),
        Err(e) => Err(e),
    };
    found.unwrap_or_else(|e| {
        let why = format!("cannot read as the frame's user: {e}");
        paths
            .into_iter()
            .map(|p| FoundOutput::unreadable(OutputCheck::new(&p), why.clone()))
            .collect()
    })
}

/// Takes the frame's user's file-system identity for this thread alone
/// (the raw system calls act on the calling thread; glibc's wrappers for
/// groups would change every thread of the worker).
fn become_reader((uid, gid, groups): &Ids) -> std::io::Result<()> {
    let err = std::io::Error::last_os_error;
    // SAFETY: plain system calls on this thread's credentials, with a
    // buffer that outlives the call.
    unsafe {
        if libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) != 0 {
            return Err(err());
        }
        libc::syscall(libc::SYS_setfsgid, *gid);
        libc::syscall(libc::SYS_setfsuid, *uid);
        // setfsuid answers the previous id whatever happens: ask again.
        if libc::syscall(libc::SYS_setfsuid, u32::MAX) as u32 != *uid {
            return Err(std::io::Error::other("setfsuid was refused"));
        }
    }
    Ok(())
}

/// What is found at one output, as this thread may read it.
pub fn check(path: &str, full: &Path) -> FoundOutput {
    let mut c = OutputCheck::new(path);
    // First a handle that opens nothing (O_PATH: a device is not opened, a
    // FIFO not waited on); only a regular file is then opened for reading,
    // through that handle, so it is the file just looked at. A symbolic
    // link is followed (renders are often linked into place).
    let handle = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(full);
    let handle = match handle {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            c.state = OutputState::Missing;
            return FoundOutput {
                check: c,
                thumbnail: None,
            };
        }
        Err(e) => return FoundOutput::unreadable(c, e.to_string()),
    };
    let meta = match handle.metadata() {
        Ok(m) => m,
        Err(e) => return FoundOutput::unreadable(c, e.to_string()),
    };
    if !meta.is_file() {
        return FoundOutput::unreadable(c, "not a regular file".into());
    }
    c.size = meta.len();
    if c.size == 0 {
        c.state = OutputState::Empty;
        return FoundOutput {
            check: c,
            thumbnail: None,
        };
    }
    if c.size > MAX_FILE {
        let why = format!("{} bytes is too large to preview", c.size);
        return FoundOutput::unreadable(c, why);
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(format!("/proc/self/fd/{}", handle.as_raw_fd()));
    let file = match file {
        Ok(f) => f,
        Err(e) => return FoundOutput::unreadable(c, e.to_string()),
    };
    let mut reader = match ImageReader::new(BufReader::new(file)).with_guessed_format() {
        Ok(r) => r,
        Err(e) => return FoundOutput::unreadable(c, e.to_string()),
    };
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let img = match reader.decode() {
        Ok(i) => i,
        Err(e) => return FoundOutput::unreadable(c, e.to_string()),
    };
    c.width = img.width();
    c.height = img.height();
    let thumb = shrink(&img);
    let b = brightness(&thumb);
    c.brightness = Some(b);
    if b <= BLACK && is_black(&thumb) {
        c.state = OutputState::Black;
    }
    let mut jpeg = Vec::new();
    let encoded = thumb.write_to(&mut Cursor::new(&mut jpeg), image::ImageFormat::Jpeg);
    if encoded.is_ok() {
        c.thumbnail = true;
    }
    FoundOutput {
        check: c,
        thumbnail: encoded.ok().map(|_| jpeg),
    }
}

/// The image at most [`THUMB`] pixels a side, as 8-bit sRGB: scene-linear
/// float images (EXR) get the sRGB curve, so they look as they would in a
/// viewer rather than dark.
fn shrink(img: &DynamicImage) -> image::RgbImage {
    // (`thumbnail` would also enlarge a small image.)
    let small = if img.width() <= THUMB && img.height() <= THUMB {
        img.clone()
    } else {
        img.thumbnail(THUMB, THUMB)
    };
    match small {
        DynamicImage::ImageRgb32F(_) | DynamicImage::ImageRgba32F(_) => {
            let f = small.to_rgb32f();
            image::RgbImage::from_fn(f.width(), f.height(), |x, y| {
                let p = f.get_pixel(x, y).0;
                image::Rgb(p.map(|v| (srgb(v) * 255.0 + 0.5) as u8))
            })
        }
        _ => small.to_rgb8(),
    }
}

/// The sRGB transfer curve, for linear light clamped to 0..1.
fn srgb(v: f32) -> f32 {
    let v = if v.is_finite() {
        v.clamp(0.0, 1.0)
    } else {
        0.0
    };
    if v <= 0.003_130_8 {
        v * 12.92
    } else {
        1.055 * v.powf(1.0 / 2.4) - 0.055
    }
}

/// Mean luma (Rec. 709 weights) from 0 to 1.
fn brightness(img: &image::RgbImage) -> f32 {
    let n = (img.width() as u64 * img.height() as u64).max(1);
    let sum: f64 = img
        .pixels()
        .map(|p| 0.2126 * p[0] as f64 + 0.7152 * p[1] as f64 + 0.0722 * p[2] as f64)
        .sum();
    (sum / n as f64 / 255.0) as f32
}

/// No pixel brighter than a trace: a mostly black frame with a lit corner
/// is a night shot, not a failed render.
fn is_black(img: &image::RgbImage) -> bool {
    img.pixels().all(|p| p.0.iter().all(|&v| v <= 3))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageFormat, Rgb, Rgb32FImage, RgbImage};

    fn write(dir: &Path, name: &str, img: DynamicImage, fmt: ImageFormat) -> std::path::PathBuf {
        let p = dir.join(name);
        img.save_with_format(&p, fmt).unwrap();
        p
    }

    #[test]
    fn each_format_is_read_measured_and_thumbnailed() {
        let dir = tempfile::tempdir().unwrap();
        let grey = RgbImage::from_pixel(640, 360, Rgb([128, 128, 128]));
        let linear = Rgb32FImage::from_pixel(64, 32, Rgb([0.2, 0.2, 0.2]));
        let files = [
            write(dir.path(), "a.png", grey.clone().into(), ImageFormat::Png),
            write(dir.path(), "a.jpg", grey.clone().into(), ImageFormat::Jpeg),
            write(dir.path(), "a.tif", grey.into(), ImageFormat::Tiff),
            write(dir.path(), "a.exr", linear.into(), ImageFormat::OpenExr),
        ];
        for f in &files {
            let found = check("x", f);
            let c = &found.check;
            assert_eq!(c.state, OutputState::Ok, "{f:?}: {:?}", c.detail);
            let b = c.brightness.unwrap();
            // 128/255 in sRGB; linear 0.2 is about 0.48 in sRGB.
            assert!((0.45..0.53).contains(&b), "{f:?}: {b}");
            let thumb = image::load_from_memory(found.thumbnail.as_ref().unwrap()).unwrap();
            assert!(thumb.width() <= THUMB && thumb.height() <= THUMB);
            assert!(c.width >= 64 && c.size > 0);
        }
    }

    #[test]
    fn missing_empty_black_and_garbage_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let black = write(
            dir.path(),
            "b.png",
            RgbImage::new(32, 32).into(),
            ImageFormat::Png,
        );
        let mut night = RgbImage::new(32, 32);
        night.put_pixel(3, 3, Rgb([255, 255, 200]));
        let night = write(dir.path(), "n.png", night.into(), ImageFormat::Png);
        let empty = dir.path().join("e.exr");
        std::fs::write(&empty, b"").unwrap();
        let junk = dir.path().join("j.exr");
        std::fs::write(&junk, b"this is not an image at all").unwrap();
        let state = |p: &Path| check("x", p).check.state;
        assert_eq!(state(&dir.path().join("none.png")), OutputState::Missing);
        assert_eq!(state(&empty), OutputState::Empty);
        assert_eq!(state(&black), OutputState::Black);
        assert_eq!(state(&night), OutputState::Ok, "one lit pixel is not black");
        let j = check("x", &junk).check;
        assert_eq!(j.state, OutputState::Unreadable);
        assert!(j.detail.is_some());
        assert_eq!(state(dir.path()), OutputState::Unreadable, "a directory");
    }

    #[test]
    fn read_as_the_frames_user_never_what_it_could_not_read() {
        use std::os::unix::fs::PermissionsExt;
        if unsafe { libc::geteuid() } != 0 {
            // Under CI every test must run for real.
            assert!(std::env::var_os("CI").is_none(), "CI must run this as root");
            eprintln!("skipped: needs root, as a worker that runs frames as their users");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        let closed = dir.path().join("closed");
        for d in [&open, &closed] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
        let img: DynamicImage = RgbImage::from_pixel(8, 8, Rgb([200, 0, 0])).into();
        let public = write(&open, "a.png", img.clone(), ImageFormat::Png);
        let private = write(&open, "s.png", img.clone(), ImageFormat::Png);
        std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
        // World-readable, but in a directory the user cannot search.
        let hidden = write(&closed, "h.png", img, ImageFormat::Png);
        std::fs::set_permissions(&hidden, std::fs::Permissions::from_mode(0o644)).unwrap();
        let list = || {
            [&public, &private, &hidden, &closed.join("none.png")]
                .map(|p| ("x".to_string(), p.to_path_buf()))
                .to_vec()
        };
        let nobody = Some((65534, 65534, vec![]));
        let states: Vec<_> = check_all_as(list(), nobody)
            .into_iter()
            .map(|f| f.check.state)
            .collect();
        use OutputState::*;
        // What it cannot search it cannot tell missing from there.
        assert_eq!(states, [Ok, Unreadable, Unreadable, Unreadable]);
        let as_self: Vec<_> = check_all_as(list(), None)
            .into_iter()
            .map(|f| f.check.state)
            .collect();
        assert_eq!(as_self, [Ok, Ok, Ok, Missing]);
        // The worker's own threads kept their identity.
        assert!(std::fs::read(&private).is_ok());
    }

    #[test]
    fn a_device_is_never_opened() {
        let c = check("x", Path::new("/dev/null")).check;
        assert_eq!(c.state, OutputState::Unreadable);
        assert_eq!(c.detail.as_deref(), Some("not a regular file"));
    }

    #[test]
    fn a_fifo_is_not_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.png");
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        assert_eq!(check("x", &p).check.state, OutputState::Unreadable);
    }
}
