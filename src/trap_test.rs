//! Test builds only (`trap-test` feature): a request carrying `x-secure-headers-trap` makes the VM trap, so
//! the tests can show what each host's failure policy does when the filter fails at run time.

pub const TRAP_HEADER: &str = "x-secure-headers-trap";

pub fn trap_if_asked(asked: bool) {
    if asked {
        #[cfg(target_arch = "wasm32")]
        core::arch::wasm32::unreachable();
    }
}
