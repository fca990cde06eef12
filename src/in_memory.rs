//! A request and a response held in memory, with a proxy's semantics: header names compared without case, the
//! first value answers a read, `set` replaces every copy. Envoy's fetched document is edited as one, the CLI's
//! `explain` makes them up, and the engine's tests and fuzz targets drive the engine with them.

use crate::host::{RequestView, ResponseHeaders};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InMemoryRequest {
    pub method: Vec<u8>,
    pub scheme: Vec<u8>,
    pub authority: Vec<u8>,
    /// The URL path, with its query if any.
    pub url_path: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl InMemoryRequest {
    pub fn new(method: &str, scheme: &str, authority: &str, url_path: &str) -> Self {
        InMemoryRequest {
            method: method.into(),
            scheme: scheme.into(),
            authority: authority.into(),
            url_path: url_path.into(),
            headers: Vec::new(),
        }
    }

    pub fn add_header(&mut self, name: &str, value: impl Into<Vec<u8>>) {
        self.headers.push((name.to_owned(), value.into()));
    }
}

fn first_value<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_slice())
}

impl RequestView for InMemoryRequest {
    fn host_and_path(&mut self) -> (Option<&[u8]>, Option<&[u8]>) {
        (Some(&self.authority), Some(&self.url_path))
    }

    fn method(&mut self) -> Option<&[u8]> {
        Some(&self.method)
    }

    fn scheme(&mut self) -> Option<&[u8]> {
        Some(&self.scheme)
    }

    fn header(&mut self, name: &str) -> Option<&[u8]> {
        first_value(&self.headers, name)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InMemoryResponse {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl InMemoryResponse {
    pub fn new(status: u16, headers: &[(&str, &[u8])]) -> Self {
        InMemoryResponse {
            status,
            headers: headers
                .iter()
                .map(|(name, value)| ((*name).to_owned(), value.to_vec()))
                .collect(),
        }
    }

    /// Every value of `name`, in order.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_slice())
    }
}

impl ResponseHeaders for InMemoryResponse {
    fn status(&mut self) -> Option<u16> {
        Some(self.status)
    }

    fn header(&mut self, name: &str) -> Option<&[u8]> {
        first_value(&self.headers, name)
    }

    fn set(&mut self, name: &str, value: &str) {
        self.remove(name);
        self.append(name, value);
    }

    fn append(&mut self, name: &str, value: &str) {
        self.headers
            .push((name.to_owned(), value.as_bytes().to_vec()));
    }

    fn remove(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }
}
