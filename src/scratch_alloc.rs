//! The proxy-wasm module's global allocator. A header read makes the host call back into the guest for a buffer
//! (`proxy_on_memory_allocate`); armed for one such read, this allocator answers from a fixed scratch slot instead
//! of the heap, so reading headers on every response allocates nothing. Everything else goes to the system heap.
//! With the `alloc-count` feature it also counts heap allocations, for the allocation test.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Distinct reads that must be alive at once: request host and path, one more request read, one response read.
pub const SLOTS: usize = 4;
/// A header value up to this size is read without allocating; a larger one comes from the heap.
pub const SLOT_BYTES: usize = 16 * 1024;
const NOT_ARMED: usize = usize::MAX;

#[repr(C, align(16))]
struct Arena(UnsafeCell<[[u8; SLOT_BYTES]; SLOTS]>);

// SAFETY: a Wasm guest is single-threaded; slots are handed out one read at a time.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena(UnsafeCell::new([[0; SLOT_BYTES]; SLOTS]));
static ARMED: AtomicUsize = AtomicUsize::new(NOT_ARMED);
#[cfg(feature = "alloc-count")]
static HEAP_ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

pub struct ScratchAllocator;

fn slot_ptr(slot: usize) -> *mut u8 {
    let base = ARENA.0.get().cast::<u8>();
    // In bounds: callers pass slot < SLOTS.
    base.wrapping_add(slot.min(SLOTS - 1) * SLOT_BYTES)
}

fn in_arena(ptr: *mut u8) -> bool {
    let base = ARENA.0.get().cast::<u8>() as usize;
    (base..base + SLOTS * SLOT_BYTES).contains(&(ptr as usize))
}

// SAFETY: slot memory is static, aligned to 16 and never handed out twice while armed once; everything else
// is delegated to the system allocator unchanged.
unsafe impl GlobalAlloc for ScratchAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let armed = ARMED.swap(NOT_ARMED, Ordering::Relaxed);
        if armed < SLOTS && layout.size() <= SLOT_BYTES && layout.align() <= 16 {
            return slot_ptr(armed);
        }
        #[cfg(feature = "alloc-count")]
        HEAP_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded as received.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !in_arena(ptr) {
            // SAFETY: not a slot, so it came from System.alloc.
            unsafe { System.dealloc(ptr, layout) }
        }
    }
}

/// Runs `read` (one host call that may ask the guest for one buffer) with `slot` armed for that buffer.
pub fn with_slot<T>(slot: usize, read: impl FnOnce() -> T) -> T {
    ARMED.store(slot, Ordering::Relaxed);
    let result = read();
    // The host asks for no buffer when the header is absent: disarm so no later allocation gets the slot.
    ARMED.store(NOT_ARMED, Ordering::Relaxed);
    result
}

/// Whether `ptr` is scratch memory (borrowed until the slot's next read) rather than a heap buffer to free.
pub fn is_scratch(ptr: *mut u8) -> bool {
    in_arena(ptr)
}

/// Heap allocations since the module started (slot reads excluded).
#[cfg(feature = "alloc-count")]
pub fn heap_allocations() -> usize {
    HEAP_ALLOCATIONS.load(Ordering::Relaxed)
}
