//! The request and the response as the engine sees them in Envoy's process: each read borrows the value from
//! Envoy's own header map (no copy, no allocation), for as long as the hook runs and the map is not written;
//! each write hands Envoy the pre-rendered name and value to copy.

use crate::abi::{self, FilterEnvoyPtr, HeaderMap};
use secure_headers::{status_code, RequestView, ResponseHeaders};

/// The request headers of one stream, during one hook.
pub struct NativeRequest {
    filter: FilterEnvoyPtr,
}

impl NativeRequest {
    pub fn new(filter: FilterEnvoyPtr) -> Self {
        NativeRequest { filter }
    }

    /// A request header (or pseudo-header) by lower-case name, without needing `&mut`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        abi::header(self.filter, HeaderMap::Request, name, self)
    }

    /// Replaces a request header before the upstream sees it.
    pub fn set(&mut self, name: &str, value: &str) {
        abi::set_header(self.filter, HeaderMap::Request, name, value);
    }

    pub fn remove(&mut self, name: &str) {
        abi::remove_header(self.filter, HeaderMap::Request, name);
    }
}

impl RequestView for NativeRequest {
    fn host_and_path(&mut self) -> (Option<&[u8]>, Option<&[u8]>) {
        (self.get(":authority"), self.get(":path"))
    }

    fn method(&mut self) -> Option<&[u8]> {
        self.get(":method")
    }

    fn scheme(&mut self) -> Option<&[u8]> {
        self.get(":scheme")
    }

    fn header(&mut self, name: &str) -> Option<&[u8]> {
        self.get(name)
    }
}

/// The response headers of one stream, while Envoy still lets the filter change them.
pub struct NativeResponse {
    filter: FilterEnvoyPtr,
}

impl NativeResponse {
    pub fn new(filter: FilterEnvoyPtr) -> Self {
        NativeResponse { filter }
    }
}

impl ResponseHeaders for NativeResponse {
    fn status(&mut self) -> Option<u16> {
        status_code(self.header(":status")?)
    }

    fn header(&mut self, name: &str) -> Option<&[u8]> {
        abi::header(self.filter, HeaderMap::Response, name, self)
    }

    fn set(&mut self, name: &str, value: &str) {
        abi::set_header(self.filter, HeaderMap::Response, name, value);
    }

    fn append(&mut self, name: &str, value: &str) {
        abi::add_header(self.filter, HeaderMap::Response, name, value);
    }

    fn remove(&mut self, name: &str) {
        abi::remove_header(self.filter, HeaderMap::Response, name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::mock_host::{pairs, with_host};

    #[test]
    fn the_request_reads_envoys_pseudo_headers() {
        let ((), host) = with_host(
            |host| {
                host.request_headers = pairs(&[
                    (":authority", "photos.example"),
                    (":path", "/a?b"),
                    (":method", "GET"),
                    (":scheme", "https"),
                    ("accept", "text/html"),
                    ("accept", "*/*"),
                    ("accept-encoding", "gzip"),
                ])
            },
            || {
                let mut request = NativeRequest::new(std::ptr::null_mut());
                assert_eq!(
                    request.host_and_path(),
                    (Some(&b"photos.example"[..]), Some(&b"/a?b"[..]))
                );
                assert_eq!(request.method(), Some(&b"GET"[..]));
                assert_eq!(request.scheme(), Some(&b"https"[..]));
                assert_eq!(
                    request.header("accept"),
                    Some(&b"text/html"[..]),
                    "the first value"
                );
                assert_eq!(request.header("cookie"), None);
                request.set("accept-encoding", "identity");
                request.remove("accept");
            },
        );
        assert_eq!(
            host.request_headers[4..],
            pairs(&[("accept-encoding", "identity")])[..]
        );
    }

    #[test]
    fn the_response_reads_its_status_and_writes_through() {
        let (status, host) = with_host(
            |host| host.response_headers = pairs(&[(":status", "404"), ("x-powered-by", "E")]),
            || {
                let mut response = NativeResponse::new(std::ptr::null_mut());
                response.remove("x-powered-by");
                assert_eq!(
                    response.header("x-powered-by"),
                    None,
                    "read as the map now stands"
                );
                response.set("x-frame-options", "DENY");
                response.append("vary", "a");
                response.status()
            },
        );
        assert_eq!(status, Some(404));
        assert_eq!(
            host.response_headers,
            pairs(&[
                (":status", "404"),
                ("x-frame-options", "DENY"),
                ("vary", "a")
            ])
        );
    }

    #[test]
    fn a_status_that_is_not_a_number_is_absent() {
        let (status, _) = with_host(
            |host| host.response_headers = pairs(&[(":status", "2OO")]),
            || NativeResponse::new(std::ptr::null_mut()).status(),
        );
        assert_eq!(status, None);
    }
}
