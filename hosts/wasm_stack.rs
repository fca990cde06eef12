//! Build script of both Wasm adapters (hosts/envoy, hosts/traefik) and of the Rust comparison filters of
//! `make bench` (bench/filters/*), so that they compare like with like: the module's stack size.
//!
//! The toolchain gives a Wasm module a 1 MiB stack, nearly all of an instance's memory. Traefik builds a new
//! instance for every router at every configuration reload, and Go frees a replaced one only several garbage
//! collections later, so the stack is what reloads pile up (README, "Traefik: memory and reloads"). Both e2e
//! suites pass with a 16 KiB stack; 64 KiB is four times that. The stack is first in linear memory, below the
//! static data, so an overflow traps (the host's failure policy) and never overwrites data.
const STACK_BYTES: u32 = 64 * 1024;

fn main() {
    // Only the Wasm link: the native test builds of these crates keep the platform's stack.
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg-cdylib=-zstack-size={STACK_BYTES}");
    }
}
