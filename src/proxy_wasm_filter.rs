//! The proxy-wasm adapter (Envoy and every proxy-wasm host): reads the policy at configure time and applies it
//! to each response. The request-side facts are decided while the request headers pass (Envoy does not let a
//! filter read them later) and kept in the stream's context, which comes from the allocator's stream pool. Host
//! access goes through the raw ABI so that an unexpected status reads as "absent" instead of trapping the VM, and
//! reads land in the allocator's scratch slots: the per-request path allocates nothing.

use crate::engine::RequestFacts;
use crate::guest_alloc::{self, GuestAllocator, STREAM_BLOCK_BYTES};
use crate::host::{RequestView, ResponseHeaders};
use crate::policy::Policy;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use std::rc::Rc;

#[global_allocator]
static ALLOCATOR: GuestAllocator = GuestAllocator;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(PolicyRoot { policy: None }) });
}}

const REQUEST_HEADERS: u32 = 0;
const RESPONSE_HEADERS: u32 = 2;
const STATUS_OK: u32 = 0;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_value(
        map: u32,
        key: *const u8,
        key_size: usize,
        value: *mut *mut u8,
        value_size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map: u32,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_add_header_map_value(
        map: u32,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map: u32, key: *const u8, key_size: usize) -> u32;
}

/// One per plugin: Envoy runs every plugin with the same vm_config in one VM, each with its own root context,
/// so the policy belongs to the root context, never to the VM.
struct PolicyRoot {
    policy: Option<Rc<Policy>>,
}

impl Context for PolicyRoot {}

impl RootContext for PolicyRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let json = self.get_plugin_configuration().unwrap_or_default();
        match Policy::parse(&json) {
            Ok(policy) => {
                log::info!(
                    "secure-headers: policy loaded ({} rule(s))",
                    policy.rules.len()
                );
                self.policy = Some(Rc::new(policy));
                #[cfg(feature = "alloc-count")]
                allocation_metric::define();
                true
            }
            Err(err) => {
                // Envoy then refuses the listener (or NACKs the update) and keeps no half-read policy.
                log::error!("secure-headers: {err}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let policy = self.policy.clone()?;
        Some(guest_alloc::with_stream_block(|| {
            Box::new(SecureHeaders {
                policy,
                facts: None,
            })
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct SecureHeaders {
    policy: Rc<Policy>,
    /// None when the filter never saw the request (a reply made before it ran).
    facts: Option<RequestFacts>,
}

const _: () = assert!(
    std::mem::size_of::<SecureHeaders>() <= STREAM_BLOCK_BYTES
        && std::mem::align_of::<SecureHeaders>() <= 16,
    "a stream context must fit one block of the stream pool"
);

impl Context for SecureHeaders {}

impl HttpContext for SecureHeaders {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.facts = Some(self.policy.inspect_request(&mut EnvoyRequest::new()));
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let facts = self
            .facts
            .unwrap_or_else(|| self.policy.facts_without_request());
        self.policy
            .apply_response(&facts, &mut EnvoyResponse::new());
        #[cfg(feature = "alloc-count")]
        allocation_metric::report();
        Action::Continue
    }
}

/// One scratch slot and the heap buffer of a value too large for it.
struct Slot {
    index: usize,
    oversized: Vec<u8>,
}

impl Slot {
    fn read(&mut self, map: u32, name: &str) -> Option<&[u8]> {
        let mut data: *mut u8 = std::ptr::null_mut();
        let mut size: usize = 0;
        // SAFETY: the host reads `name` and writes a pointer to a buffer it got from proxy_on_memory_allocate.
        let status = guest_alloc::with_slot(self.index, || unsafe {
            proxy_get_header_map_value(map, name.as_ptr(), name.len(), &mut data, &mut size)
        });
        if status != STATUS_OK {
            return None;
        }
        if data.is_null() || size == 0 {
            return Some(&[]);
        }
        if guest_alloc::is_scratch(data) {
            // SAFETY: the host wrote `size` bytes into this slot; it stays untouched until this slot's next read,
            // which needs `&mut self` and so ends this borrow first.
            return Some(unsafe { std::slice::from_raw_parts(data, size) });
        }
        // SAFETY: a heap buffer of exactly `size` bytes from proxy_on_memory_allocate (a boxed slice); owning it
        // here frees it on the next read or on drop.
        self.oversized = unsafe { Vec::from_raw_parts(data, size, size) };
        Some(&self.oversized)
    }
}

/// Each view owns distinct slots; the two views are never alive at once.
struct EnvoyRequest {
    authority: Slot,
    path: Slot,
    other: Slot,
}

impl EnvoyRequest {
    fn new() -> Self {
        let slot = |index| Slot {
            index,
            oversized: Vec::new(),
        };
        EnvoyRequest {
            authority: slot(0),
            path: slot(1),
            other: slot(2),
        }
    }
}

impl RequestView for EnvoyRequest {
    fn host_and_path(&mut self) -> (Option<&[u8]>, Option<&[u8]>) {
        (
            self.authority.read(REQUEST_HEADERS, ":authority"),
            self.path.read(REQUEST_HEADERS, ":path"),
        )
    }

    fn method(&mut self) -> Option<&[u8]> {
        self.other.read(REQUEST_HEADERS, ":method")
    }

    fn scheme(&mut self) -> Option<&[u8]> {
        self.other.read(REQUEST_HEADERS, ":scheme")
    }

    fn header(&mut self, name: &str) -> Option<&[u8]> {
        self.other.read(REQUEST_HEADERS, name)
    }
}

struct EnvoyResponse {
    slot: Slot,
}

impl EnvoyResponse {
    fn new() -> Self {
        EnvoyResponse {
            slot: Slot {
                index: 3,
                oversized: Vec::new(),
            },
        }
    }
}

impl ResponseHeaders for EnvoyResponse {
    fn status(&mut self) -> Option<u16> {
        let status = self.slot.read(RESPONSE_HEADERS, ":status")?;
        std::str::from_utf8(status).ok()?.parse().ok()
    }

    fn header(&mut self, name: &str) -> Option<&[u8]> {
        self.slot.read(RESPONSE_HEADERS, name)
    }

    // A write the host refuses (a header map it no longer lets us touch) leaves the response as it was.
    fn set(&mut self, name: &str, value: &str) {
        // SAFETY: the host copies `name` and `value` from live &strs.
        unsafe {
            proxy_replace_header_map_value(
                RESPONSE_HEADERS,
                name.as_ptr(),
                name.len(),
                value.as_ptr(),
                value.len(),
            )
        };
    }

    fn append(&mut self, name: &str, value: &str) {
        // SAFETY: as in `set`.
        unsafe {
            proxy_add_header_map_value(
                RESPONSE_HEADERS,
                name.as_ptr(),
                name.len(),
                value.as_ptr(),
                value.len(),
            )
        };
    }

    fn remove(&mut self, name: &str) {
        // SAFETY: the host reads `name` from a live &str.
        unsafe { proxy_remove_header_map_value(RESPONSE_HEADERS, name.as_ptr(), name.len()) };
    }
}

/// The `alloc-count` build reports the guest's heap allocations as the Envoy counter
/// `wasmcustom.secure_headers.heap_allocations`.
#[cfg(feature = "alloc-count")]
mod allocation_metric {
    use crate::guest_alloc::heap_allocations;
    use proxy_wasm::hostcalls;
    use proxy_wasm::types::MetricType;
    use std::cell::Cell;

    thread_local! {
        static METRIC: Cell<Option<u32>> = const { Cell::new(None) };
        static REPORTED: Cell<usize> = const { Cell::new(0) };
    }

    pub fn define() {
        let id =
            hostcalls::define_metric(MetricType::Counter, "secure_headers.heap_allocations").ok();
        METRIC.with(|m| m.set(id));
    }

    /// Adds the allocations made since the last report (so the counter sums over every VM).
    pub fn report() {
        let Some(id) = METRIC.with(Cell::get) else {
            return;
        };
        let now = heap_allocations();
        let delta = now.saturating_sub(REPORTED.with(|r| r.replace(now)));
        if delta > 0 {
            let _ = hostcalls::increment_metric(id, i64::try_from(delta).unwrap_or(i64::MAX));
        }
    }
}
