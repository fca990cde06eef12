//! Test builds only (`trap-test` feature): a request carrying the engine's trap header makes the module panic,
//! so the tests show that Envoy catches nothing and needs nothing: the module catches its own panic.

use crate::exchange::NativeRequest;
use secure_headers::trap_test::TRAP_HEADER;

pub fn panic_if_asked(request: &NativeRequest) {
    #[allow(clippy::panic)]
    if request.get(TRAP_HEADER).is_some() {
        panic!("{TRAP_HEADER} asked for a panic");
    }
}
