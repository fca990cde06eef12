//! What the engine needs from a proxy, and nothing more. Each host ABI (proxy-wasm, http-wasm) implements
//! these over its own calls; tests implement them over plain vectors.

/// The request as the filter saw it on the way in.
pub trait RequestView {
    /// Host (may carry a port) and path (may carry a query), read together so both can be borrowed at once.
    fn host_and_path(&mut self) -> (Option<&[u8]>, Option<&[u8]>);
    /// The request method (`GET`, `HEAD`, ...).
    fn method(&mut self) -> Option<&[u8]>;
    /// The scheme of the connection the request arrived on (`http` or `https`).
    fn scheme(&mut self) -> Option<&[u8]>;
    /// A request header by lower-case name (the first value when repeated).
    fn header(&mut self, name: &str) -> Option<&[u8]>;
}

/// The response headers while the filter may still change them.
pub trait ResponseHeaders {
    fn status(&mut self) -> Option<u16>;
    /// A response header by lower-case name (the first value when repeated).
    fn header(&mut self, name: &str) -> Option<&[u8]>;
    /// Replaces every value of `name` with one value.
    fn set(&mut self, name: &str, value: &str);
    /// `set` for a header no earlier write of this response named (the engine knows it from the rule): a host
    /// can then choose its call from the upstream's headers alone, without remembering what it wrote.
    fn set_first(&mut self, name: &str, value: &str) {
        self.set(name, value);
    }
    /// Adds one more value of `name`.
    fn append(&mut self, name: &str, value: &str);
    fn remove(&mut self, name: &str);
}
