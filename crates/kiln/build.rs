//! Links `kiln` as a position-dependent executable. The binary carries the
//! server too, so a PIE build dirties megabytes of relocated read-only data
//! at start-up in every process; the worker daemon's idle RSS is mostly
//! that. Without PIE the linker resolves those addresses once, at link time.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
