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
    fn proxy_get_header_map_pairs(map: u32, pairs: *mut *mut u8, pairs_size: *mut usize) -> u32;
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
        let started = self.get_current_time();
        match Policy::parse(&json) {
            Ok(policy) => {
                let elapsed = self
                    .get_current_time()
                    .duration_since(started)
                    .unwrap_or_default();
                log::info!(
                    "secure-headers: policy loaded ({} rule(s), {:.3} ms)",
                    policy.rules.len(),
                    elapsed.as_secs_f64() * 1000.0
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

/// A copy of one header map, taken with a single host call (`proxy_get_header_map_pairs`) into a scratch slot,
/// so that every later read is a scan of guest memory instead of another call into the host. Removals are
/// remembered so the copy keeps answering as the map now stands.
struct HeaderSnapshot {
    slot: usize,
    len: usize,
    oversized: Vec<u8>,
    /// Bit i: pair i was removed (pairs past the 128th are never marked; removals of those are rare and the
    /// engine never reads a header it removed).
    removed: u128,
}

impl HeaderSnapshot {
    fn take(map: u32, slot: usize) -> Self {
        let mut snapshot = HeaderSnapshot {
            slot,
            len: 0,
            oversized: Vec::new(),
            removed: 0,
        };
        let mut data: *mut u8 = std::ptr::null_mut();
        let mut size: usize = 0;
        // SAFETY: the host writes a pointer to a buffer it got from proxy_on_memory_allocate, and its size.
        let status = guest_alloc::with_slot(slot, || unsafe {
            proxy_get_header_map_pairs(map, &mut data, &mut size)
        });
        if status != STATUS_OK || data.is_null() || size == 0 {
            return snapshot;
        }
        snapshot.len = size;
        if !guest_alloc::is_scratch(data) {
            // SAFETY: a heap buffer of exactly `size` bytes from proxy_on_memory_allocate (a boxed slice).
            snapshot.oversized = unsafe { Vec::from_raw_parts(data, size, size) };
        }
        snapshot
    }

    fn bytes(&self) -> &[u8] {
        if !self.oversized.is_empty() {
            return &self.oversized;
        }
        // SAFETY: the slot holds `len` bytes written by the host; each live snapshot owns a distinct slot, and it
        // is rewritten only by the next `take` of that slot, after this snapshot is gone.
        unsafe { std::slice::from_raw_parts(guest_alloc::slot_ptr(self.slot), self.len) }
    }

    /// Pairs in the ABI's layout: count, then (name length, value length) per pair, then each name and value
    /// followed by a NUL.
    fn pairs(&self) -> impl Iterator<Item = (usize, &[u8], &[u8])> {
        let bytes = self.bytes();
        let word = |at: usize| -> usize {
            bytes
                .get(at..at + 4)
                .and_then(|w| w.try_into().ok())
                .map_or(0, |w: [u8; 4]| u32::from_le_bytes(w) as usize)
        };
        let count = word(0);
        let mut data = 4 + count.saturating_mul(8);
        (0..count).map_while(move |i| {
            let (name_len, value_len) = (word(4 + i * 8), word(8 + i * 8));
            let name = bytes.get(data..data + name_len)?;
            let value = bytes.get(data + name_len + 1..data + name_len + 1 + value_len)?;
            data += name_len + value_len + 2;
            Some((i, name, value))
        })
    }

    fn get(&self, name: &str) -> Option<&[u8]> {
        self.pairs()
            .find(|(i, n, _)| *n == name.as_bytes() && (*i >= 128 || self.removed & (1 << i) == 0))
            .map(|(_, _, value)| value)
    }

    fn mark_removed(&mut self, name: &str) -> bool {
        let mut found = false;
        let mut removed = self.removed;
        for (i, n, _) in self.pairs() {
            if n == name.as_bytes() {
                found = true;
                if i < 128 {
                    removed |= 1 << i;
                }
            }
        }
        self.removed = removed;
        found
    }
}

struct EnvoyRequest {
    headers: HeaderSnapshot,
}

impl EnvoyRequest {
    fn new() -> Self {
        EnvoyRequest {
            headers: HeaderSnapshot::take(REQUEST_HEADERS, 0),
        }
    }
}

impl RequestView for EnvoyRequest {
    fn host_and_path(&mut self) -> (Option<&[u8]>, Option<&[u8]>) {
        (self.headers.get(":authority"), self.headers.get(":path"))
    }

    fn method(&mut self) -> Option<&[u8]> {
        self.headers.get(":method")
    }

    fn scheme(&mut self) -> Option<&[u8]> {
        self.headers.get(":scheme")
    }

    fn header(&mut self, name: &str) -> Option<&[u8]> {
        self.headers.get(name)
    }
}

struct EnvoyResponse {
    headers: HeaderSnapshot,
}

impl EnvoyResponse {
    fn new() -> Self {
        EnvoyResponse {
            headers: HeaderSnapshot::take(RESPONSE_HEADERS, 1),
        }
    }
}

impl ResponseHeaders for EnvoyResponse {
    fn status(&mut self) -> Option<u16> {
        std::str::from_utf8(self.headers.get(":status")?)
            .ok()?
            .parse()
            .ok()
    }

    fn header(&mut self, name: &str) -> Option<&[u8]> {
        self.headers.get(name)
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

    /// Only a header that is there costs a host call.
    fn remove(&mut self, name: &str) {
        if self.headers.mark_removed(name) {
            // SAFETY: the host reads `name` from a live &str.
            unsafe { proxy_remove_header_map_value(RESPONSE_HEADERS, name.as_ptr(), name.len()) };
        }
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
