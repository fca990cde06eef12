//! The `alloc-count` build counts the module's heap allocations per hook, as the Envoy counters
//! `dynamicmodulescustom.secure_headers.allocations.<hook>`, for the allocation test: the header path must make none.

use crate::abi::{self, ConfigEnvoyPtr, FilterEnvoyPtr};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    // Per worker thread: a hook runs on one thread from start to end.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// The system allocator, counting each allocation and reallocation of this thread.
pub struct CountingAllocator;

fn count() {
    // try_with: a thread being torn down has no counter left; its allocations are not counted.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get().saturating_add(1)));
}

// SAFETY: every call is passed to the system allocator unchanged.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

fn allocations() -> u64 {
    ALLOCATIONS.try_with(Cell::get).unwrap_or(0)
}

/// The counter ids of the hooks that are measured.
#[derive(Clone, Copy)]
pub struct AllocationCounters {
    stream_new: Option<usize>,
    request_headers: Option<usize>,
    response_headers: Option<usize>,
}

pub enum Hook {
    StreamNew,
    RequestHeaders,
    ResponseHeaders,
}

impl AllocationCounters {
    pub fn define(config: ConfigEnvoyPtr) -> Self {
        let define =
            |hook: &str| abi::define_counter(config, &format!("secure_headers.allocations.{hook}"));
        AllocationCounters {
            stream_new: define("stream_new"),
            request_headers: define("request_headers"),
            response_headers: define("response_headers"),
        }
    }

    /// Runs `body` and adds the allocations it made to the hook's counter.
    pub fn measure<T>(&self, filter: FilterEnvoyPtr, hook: Hook, body: impl FnOnce() -> T) -> T {
        let before = allocations();
        let out = body();
        let made = allocations().saturating_sub(before);
        let id = match hook {
            Hook::StreamNew => self.stream_new,
            Hook::RequestHeaders => self.request_headers,
            Hook::ResponseHeaders => self.response_headers,
        };
        if let Some(id) = id.filter(|_| made > 0) {
            abi::add_to_counter(filter, id, made);
        }
        out
    }
}
