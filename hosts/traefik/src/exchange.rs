//! The request and the response as the engine sees them in Traefik: each read is one host call into a reused
//! buffer that grows once for a larger value. The buffers outlive the request: the views borrow them from the
//! instance's `ReadBuffers`, so a request allocates none of them after the first, and moves none.

use crate::abi::{self, HeaderKind};
use secure_headers::{RequestView, ResponseHeaders};
use std::cell::RefCell;

/// A buffer grown past this (a huge URI or header) is freed rather than kept for the next request.
const MAX_SPARE_BYTES: usize = 16 * 1024;

/// The read buffers an instance keeps between requests: three for the request's view, one for the response's.
#[derive(Default)]
pub struct ReadBuffers {
    host: Vec<u8>,
    uri: Vec<u8>,
    request_scratch: Vec<u8>,
    response_scratch: Vec<u8>,
}

thread_local! {
    static READ_BUFFERS: RefCell<ReadBuffers> = const {
        RefCell::new(ReadBuffers {
            host: Vec::new(),
            uri: Vec::new(),
            request_scratch: Vec::new(),
            response_scratch: Vec::new(),
        })
    };
}

/// Runs `f` with the instance's read buffers (fresh ones on a re-entry, which the host never makes).
pub fn with_read_buffers<R>(f: impl FnOnce(&mut ReadBuffers) -> R) -> R {
    READ_BUFFERS.with(|kept| match kept.try_borrow_mut() {
        Ok(mut buffers) => {
            let result = f(&mut buffers);
            buffers.free_oversized();
            result
        }
        Err(_) => f(&mut ReadBuffers::default()),
    })
}

impl ReadBuffers {
    /// The request's and the response's views, over separate buffers.
    pub fn views(&mut self) -> (TraefikRequest<'_>, TraefikResponse<'_>) {
        (
            TraefikRequest {
                host: &mut self.host,
                uri: &mut self.uri,
                host_and_uri_len: None,
                scratch: &mut self.request_scratch,
            },
            TraefikResponse {
                scratch: &mut self.response_scratch,
            },
        )
    }

    fn free_oversized(&mut self) {
        free_if_oversized(&mut self.host);
        free_if_oversized(&mut self.uri);
        free_if_oversized(&mut self.request_scratch);
        free_if_oversized(&mut self.response_scratch);
    }
}

#[inline(always)]
fn free_if_oversized(buffer: &mut Vec<u8>) {
    if buffer.capacity() > MAX_SPARE_BYTES {
        *buffer = Vec::new();
    }
}

pub struct TraefikRequest<'b> {
    host: &'b mut Vec<u8>,
    uri: &'b mut Vec<u8>,
    /// The lengths of the host (None: absent) and URI at the start of their buffers, once read: the report
    /// collector and the rules both ask, and each read is a host call.
    host_and_uri_len: Option<(Option<usize>, usize)>,
    scratch: &'b mut Vec<u8>,
}

impl RequestView for TraefikRequest<'_> {
    fn host_and_path(&mut self) -> (Option<&[u8]>, Option<&[u8]>) {
        let (host_len, uri_len) = *self.host_and_uri_len.get_or_insert_with(|| {
            let host = abi::first_header_value(self.host, HeaderKind::Request, "host");
            (host.map(<[u8]>::len), abi::uri(self.uri).len())
        });
        (
            host_len.and_then(|len| self.host.get(..len)),
            self.uri.get(..uri_len),
        )
    }

    fn method(&mut self) -> Option<&[u8]> {
        Some(abi::method(self.scratch))
    }

    /// Traefik's entry point sets X-Forwarded-Proto from the connection (unless it trusts the peer's own).
    fn scheme(&mut self) -> Option<&[u8]> {
        abi::first_header_value(self.scratch, HeaderKind::Request, "x-forwarded-proto")
    }

    fn header(&mut self, name: &str) -> Option<&[u8]> {
        abi::first_header_value(self.scratch, HeaderKind::Request, name)
    }
}

pub struct TraefikResponse<'b> {
    scratch: &'b mut Vec<u8>,
}

impl ResponseHeaders for TraefikResponse<'_> {
    fn status(&mut self) -> Option<u16> {
        abi::status_code()
    }

    fn header(&mut self, name: &str) -> Option<&[u8]> {
        abi::first_header_value(self.scratch, HeaderKind::Response, name)
    }

    fn set(&mut self, name: &str, value: &str) {
        abi::set_header(HeaderKind::Response, name, value);
    }

    fn append(&mut self, name: &str, value: &str) {
        abi::add_header(HeaderKind::Response, name, value);
    }

    fn remove(&mut self, name: &str) {
        abi::delete_header(HeaderKind::Response, name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::mock_host::with_host;

    #[test]
    fn a_requests_buffers_serve_the_next_one() {
        let ((), _) = with_host(
            |host| host.uri = b"/a".to_vec(),
            || {
                let uri_buffer = with_read_buffers(|buffers| {
                    let (mut request, _) = buffers.views();
                    request.host_and_path();
                    request.uri.as_ptr()
                });
                with_read_buffers(|buffers| assert_eq!(buffers.uri.as_ptr(), uri_buffer));
            },
        );
    }

    #[test]
    fn a_buffer_grown_past_the_cap_is_not_kept() {
        with_read_buffers(|buffers| buffers.response_scratch = vec![0u8; MAX_SPARE_BYTES + 1]);
        with_read_buffers(|buffers| assert_eq!(buffers.response_scratch.capacity(), 0));
        with_read_buffers(|buffers| buffers.response_scratch = vec![0u8; 8]);
        with_read_buffers(|buffers| {
            assert_eq!(buffers.response_scratch.len(), 8, "a smaller one stays")
        });
    }
}
