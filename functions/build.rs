//! The build script of every Lambda function crate (each names it with
//! `build = "../build.rs"`): a release binary for Linux is linked as a
//! position-dependent executable (`-no-pie`).
//!
//! A position-independent executable (rustc's default) carries ~24,000
//! relative relocations (the function pointers, vtables and string
//! references of the SDK's code) that the dynamic loader applies at every
//! cold start, writing to ~90 pages it must first copy. At a fixed address
//! the linker fills them in, and the loader has nothing to do for them.
//! What is given up is the randomisation of the executable's own address
//! (the stack, the heap and the shared libraries stay randomised).
//! Debug builds, tests and examples (the cold-start baseline) link as before.

fn main() {
    println!("cargo::rerun-if-changed=../build.rs");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    let release = std::env::var("PROFILE").is_ok_and(|profile| profile == "release");
    if linux && release {
        println!("cargo::rustc-link-arg-bins=-no-pie");
    }
}
