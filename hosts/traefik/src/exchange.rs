//! The request and the response as the engine sees them in Traefik: each read is one host call into a reused
//! buffer that grows once for a larger value.

use crate::abi::{self, HeaderKind};
use secure_headers::{RequestView, ResponseHeaders};

#[derive(Default)]
pub struct TraefikRequest {
    host: Vec<u8>,
    uri: Vec<u8>,
    /// The lengths of the host (None: absent) and URI at the start of their buffers, once read: the report
    /// collector and the rules both ask, and each read is a host call.
    host_and_uri_len: Option<(Option<usize>, usize)>,
    scratch: Vec<u8>,
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

#[derive(Default)]
pub struct TraefikResponse {
    scratch: Vec<u8>,
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
