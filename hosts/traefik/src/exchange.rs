//! The request and the response as the engine sees them in Traefik: each read is one host call into a reused
//! buffer that grows once for a larger value. The buffers outlive the request: each goes back to the
//! instance's spares when its view is dropped, so a request allocates none of them after the first.

use crate::abi::{self, HeaderKind};
use secure_headers::{RequestView, ResponseHeaders};
use std::cell::RefCell;

/// A buffer grown past this (a huge URI or header) is freed rather than kept for the next request.
const MAX_SPARE_BYTES: usize = 16 * 1024;

thread_local! {
    static SPARE_BUFFERS: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A read buffer from the spares (empty when there is none; the first read sizes it).
fn spare_buffer() -> Vec<u8> {
    SPARE_BUFFERS
        .with(|spares| spares.try_borrow_mut().ok()?.pop())
        .unwrap_or_default()
}

fn return_buffer(buffer: &mut Vec<u8>) {
    let buffer = std::mem::take(buffer);
    if buffer.capacity() > 0 && buffer.capacity() <= MAX_SPARE_BYTES {
        SPARE_BUFFERS.with(|spares| {
            if let Ok(mut spares) = spares.try_borrow_mut() {
                spares.push(buffer);
            }
        });
    }
}

pub struct TraefikRequest {
    host: Vec<u8>,
    uri: Vec<u8>,
    /// The lengths of the host (None: absent) and URI at the start of their buffers, once read: the report
    /// collector and the rules both ask, and each read is a host call.
    host_and_uri_len: Option<(Option<usize>, usize)>,
    scratch: Vec<u8>,
}

impl Default for TraefikRequest {
    fn default() -> Self {
        TraefikRequest {
            host: spare_buffer(),
            uri: spare_buffer(),
            host_and_uri_len: None,
            scratch: spare_buffer(),
        }
    }
}

impl Drop for TraefikRequest {
    fn drop(&mut self) {
        for buffer in [&mut self.host, &mut self.uri, &mut self.scratch] {
            return_buffer(buffer);
        }
    }
}

impl RequestView for TraefikRequest {
    fn host_and_path(&mut self) -> (Option<&[u8]>, Option<&[u8]>) {
        let (host_len, uri_len) = *self.host_and_uri_len.get_or_insert_with(|| {
            let host = abi::first_header_value(&mut self.host, HeaderKind::Request, "host");
            (host.map(<[u8]>::len), abi::uri(&mut self.uri).len())
        });
        (
            host_len.and_then(|len| self.host.get(..len)),
            self.uri.get(..uri_len),
        )
    }

    fn method(&mut self) -> Option<&[u8]> {
        Some(abi::method(&mut self.scratch))
    }

    /// Traefik's entry point sets X-Forwarded-Proto from the connection (unless it trusts the peer's own).
    fn scheme(&mut self) -> Option<&[u8]> {
        abi::first_header_value(&mut self.scratch, HeaderKind::Request, "x-forwarded-proto")
    }

    fn header(&mut self, name: &str) -> Option<&[u8]> {
        abi::first_header_value(&mut self.scratch, HeaderKind::Request, name)
    }
}

pub struct TraefikResponse {
    scratch: Vec<u8>,
}

impl Default for TraefikResponse {
    fn default() -> Self {
        TraefikResponse {
            scratch: spare_buffer(),
        }
    }
}

impl Drop for TraefikResponse {
    fn drop(&mut self) {
        return_buffer(&mut self.scratch);
    }
}

impl ResponseHeaders for TraefikResponse {
    fn status(&mut self) -> Option<u16> {
        abi::status_code()
    }

    fn header(&mut self, name: &str) -> Option<&[u8]> {
        abi::first_header_value(&mut self.scratch, HeaderKind::Response, name)
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
                let mut first = TraefikRequest::default();
                first.host_and_path();
                let uri_buffer = first.uri.as_ptr();
                drop(first);
                let reused = TraefikRequest::default();
                let buffers = [&reused.host, &reused.uri, &reused.scratch];
                assert!(buffers.iter().any(|b| b.as_ptr() == uri_buffer));
                assert!(buffers.iter().all(|b| b.len() <= MAX_SPARE_BYTES));
            },
        );
    }

    #[test]
    fn a_buffer_grown_past_the_cap_is_not_kept() {
        let mut huge = vec![0u8; MAX_SPARE_BYTES + 1];
        let before = SPARE_BUFFERS.with(|s| s.borrow().len());
        return_buffer(&mut huge);
        assert_eq!(SPARE_BUFFERS.with(|s| s.borrow().len()), before);
        assert!(huge.is_empty());
    }
}
