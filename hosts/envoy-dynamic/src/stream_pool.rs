//! Per worker thread, the boxes of finished streams, reused by the next streams: after the first requests at
//! peak concurrency, a stream costs no heap allocation (Envoy needs one stable pointer per stream).

use crate::filter::Stream;
use std::cell::RefCell;

thread_local! {
    // Boxes, not the streams themselves: each box's address is the pointer Envoy holds for one stream.
    #[allow(clippy::vec_box)]
    static FREE: RefCell<Vec<Box<Stream>>> = const { RefCell::new(Vec::new()) };
}

/// A box holding `stream`, reused when one is free; Envoy owns the pointer until `give_back`.
pub fn take(stream: Stream) -> *mut Stream {
    let reused = FREE.with(|free| free.try_borrow_mut().ok().and_then(|mut f| f.pop()));
    let boxed = match reused {
        Some(mut boxed) => {
            *boxed = stream;
            boxed
        }
        None => Box::new(stream),
    };
    Box::into_raw(boxed)
}

/// Takes back a pointer `take` gave out.
pub fn give_back(stream: *mut Stream) {
    if stream.is_null() {
        return;
    }
    // SAFETY: a pointer from `take` (Box::into_raw), given back once, when Envoy destroys the stream.
    let boxed = unsafe { Box::from_raw(stream) };
    FREE.with(|free| {
        if let Ok(mut free) = free.try_borrow_mut() {
            free.push(boxed);
        }
    });
}
