//! The proxy-wasm module's global allocator, so that the per-response path needs no heap:
//! - a header read makes the host call back into the guest for a buffer (`proxy_on_memory_allocate`); armed for
//!   that one read, the allocator answers from a fixed scratch slot;
//! - each stream's context (the request facts carried to the response phase) comes from a fixed pool of blocks,
//!   returned to the pool when the stream ends.
//!
//! Everything else, and anything larger than a slot or beyond the pool, goes to the system heap. With the
//! `alloc-count` feature the system-heap allocations are counted, for the allocation test.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Reads alive at once: the request's header map and the response's.
pub const SLOTS: usize = 2;
/// A header map up to this size is read without allocating; a larger one comes from the heap.
pub const SLOT_BYTES: usize = 32 * 1024;
/// Concurrent streams per VM served from the pool; more than this (rare for one worker) use the heap.
pub const STREAM_BLOCKS: usize = 1024;
/// Size of one stream block; a context type must fit (checked at compile time by the adapter).
pub const STREAM_BLOCK_BYTES: usize = 64;
/// `Scratch::armed` holds the armed slot plus one, so that "none" is zero.
const NOT_ARMED: usize = 0;

#[repr(C, align(16))]
struct Memory<const N: usize>(UnsafeCell<[u8; N]>);

// SAFETY: a Wasm guest is single-threaded; slots and blocks are handed out one allocation at a time.
unsafe impl<const N: usize> Sync for Memory<N> {}

impl<const N: usize> Memory<N> {
    fn base(&self) -> usize {
        self.0.get() as usize
    }

    fn contains(&self, ptr: *mut u8) -> bool {
        (self.base()..self.base() + N).contains(&(ptr as usize))
    }
}

/// The header-read slots and which one the next allocation takes. All zero at start, so its 64 KiB take no
/// room in the module (zero-initialised memory) rather than a data segment of zeros.
struct Scratch {
    memory: Memory<{ SLOTS * SLOT_BYTES }>,
    armed: AtomicUsize,
}

impl Scratch {
    const fn new() -> Self {
        Scratch {
            memory: Memory(UnsafeCell::new([0; SLOTS * SLOT_BYTES])),
            armed: AtomicUsize::new(NOT_ARMED),
        }
    }
}

/// The VM's one set of slots.
#[cfg(not(test))]
fn scratch() -> &'static Scratch {
    static SCRATCH: Scratch = Scratch::new();
    &SCRATCH
}

/// Native tests run in parallel threads, each standing for one single-threaded VM, so each gets its own slots
/// (the allocator is not the global one under `cfg(test)`, so a thread-local is safe here).
#[cfg(test)]
fn scratch() -> &'static Scratch {
    thread_local! {
        static SCRATCH: &'static Scratch = Box::leak(Box::new(Scratch::new()));
    }
    SCRATCH.with(|scratch| *scratch)
}

static STREAMS: Memory<{ STREAM_BLOCKS * STREAM_BLOCK_BYTES }> =
    Memory(UnsafeCell::new([0; STREAM_BLOCKS * STREAM_BLOCK_BYTES]));
/// Blocks never handed out yet start at this index; freed blocks form a list threaded through their first word.
static NEVER_USED: AtomicUsize = AtomicUsize::new(0);
static FREE_LIST: AtomicUsize = AtomicUsize::new(0);
static STREAM_ARMED: AtomicUsize = AtomicUsize::new(0);

#[cfg(feature = "alloc-count")]
static HEAP_ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

pub struct GuestAllocator;

impl GuestAllocator {
    fn take_slot(&self, layout: Layout) -> Option<*mut u8> {
        let slot = scratch()
            .armed
            .swap(NOT_ARMED, Ordering::Relaxed)
            .checked_sub(1)?;
        (slot < SLOTS && layout.size() <= SLOT_BYTES && layout.align() <= 16)
            .then(|| slot_ptr(slot).cast_mut())
    }

    fn take_stream_block(&self, layout: Layout) -> Option<*mut u8> {
        if STREAM_ARMED.swap(0, Ordering::Relaxed) == 0
            || layout.size() > STREAM_BLOCK_BYTES
            || layout.align() > 16
        {
            return None;
        }
        let free = FREE_LIST.load(Ordering::Relaxed);
        if free != 0 {
            // SAFETY: `free` is a block inside STREAMS whose first word holds the next free block (or 0).
            let next = unsafe { *(free as *const usize) };
            FREE_LIST.store(next, Ordering::Relaxed);
            return Some(free as *mut u8);
        }
        let index = NEVER_USED.load(Ordering::Relaxed);
        (index < STREAM_BLOCKS).then(|| {
            NEVER_USED.store(index + 1, Ordering::Relaxed);
            (STREAMS.base() + index * STREAM_BLOCK_BYTES) as *mut u8
        })
    }
}

// SAFETY: slots and blocks are static, 16-aligned and large enough for the layouts they accept; a block is on
// the free list or handed out, never both; everything else is delegated to the system allocator unchanged.
unsafe impl GlobalAlloc for GuestAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if let Some(ptr) = self
            .take_slot(layout)
            .or_else(|| self.take_stream_block(layout))
        {
            return ptr;
        }
        #[cfg(feature = "alloc-count")]
        HEAP_ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded as received.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if STREAMS.contains(ptr) {
            // SAFETY: a block of STREAMS handed out by take_stream_block; its first word links it in.
            unsafe { *(ptr as *mut usize) = FREE_LIST.load(Ordering::Relaxed) };
            FREE_LIST.store(ptr as usize, Ordering::Relaxed);
        } else if !scratch().memory.contains(ptr) {
            // SAFETY: neither a slot nor a block, so it came from System.alloc.
            unsafe { System.dealloc(ptr, layout) }
        }
    }
}

/// Runs `read` (one host call that may ask the guest for one buffer) with `slot` armed for that buffer.
pub fn with_slot<T>(slot: usize, read: impl FnOnce() -> T) -> T {
    scratch()
        .armed
        .store(slot.saturating_add(1), Ordering::Relaxed);
    let result = read();
    // The host asks for no buffer when the value is absent: disarm so no later allocation gets the slot.
    scratch().armed.store(NOT_ARMED, Ordering::Relaxed);
    result
}

/// Runs `make` (which boxes one stream context) with the stream pool armed for that box.
pub fn with_stream_block<T>(make: impl FnOnce() -> T) -> T {
    STREAM_ARMED.store(1, Ordering::Relaxed);
    let result = make();
    STREAM_ARMED.store(0, Ordering::Relaxed);
    result
}

/// Start of a scratch slot (callers pass slot < SLOTS).
pub fn slot_ptr(slot: usize) -> *const u8 {
    (scratch().memory.base() + slot.min(SLOTS - 1) * SLOT_BYTES) as *const u8
}

/// Whether `ptr` is scratch memory (borrowed until the slot's next read) rather than a heap buffer to free.
pub fn is_scratch(ptr: *mut u8) -> bool {
    scratch().memory.contains(ptr)
}

/// System-heap allocations since the module started.
#[cfg(feature = "alloc-count")]
pub fn heap_allocations() -> usize {
    HEAP_ALLOCATIONS.load(Ordering::Relaxed)
}
