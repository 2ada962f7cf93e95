//! Records the target triple this crate is compiled for: the platform whose
//! dependency graph `cargo metadata --filter-platform` is asked about.
fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    println!("cargo:rustc-env=BIZRA_RELEASE_TARGET={target}");
    println!("cargo:rerun-if-changed=build.rs");
}
