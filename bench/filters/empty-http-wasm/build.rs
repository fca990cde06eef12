//! The minimal guest's memory is one page: a 4 KiB stack (it calls nothing) instead of the toolchain's 1 MiB, so
//! it measures what Traefik's host costs per Wasm instance, not a stack no module needs.
fn main() {
    println!("cargo:rustc-link-arg-cdylib=-zstack-size=4096");
}
