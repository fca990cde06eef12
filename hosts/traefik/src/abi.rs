//! The http-wasm host calls (Traefik's `http_handler` imports), each beside its safe wrapper, with typed kinds
//! instead of the ABI's bare numbers and the packed 64-bit values spelled out (`CountLen`, `EofLen`,
//! `RequestOutcome`). Reads go into a caller's buffer that grows once when a value is larger. Under
//! `cfg(test)` the imports are a mock host (`mock_host`), so every wrapper is tested natively.

#[cfg(not(test))]
#[link(wasm_import_module = "http_handler")]
extern "C" {
    fn enable_features(features: i32) -> i32;
    fn get_config(buf: *mut u8, buf_limit: i32) -> i32;
    fn log(level: i32, message: *const u8, message_len: i32);
    fn get_method(buf: *mut u8, buf_limit: i32) -> i32;
    fn get_uri(buf: *mut u8, buf_limit: i32) -> i32;
    fn get_header_values(
        kind: i32,
        name: *const u8,
        name_len: i32,
        buf: *mut u8,
        buf_limit: i32,
    ) -> i64;
    fn set_header_value(
        kind: i32,
        name: *const u8,
        name_len: i32,
        value: *const u8,
        value_len: i32,
    );
    fn add_header_value(
        kind: i32,
        name: *const u8,
        name_len: i32,
        value: *const u8,
        value_len: i32,
    );
    fn remove_header(kind: i32, name: *const u8, name_len: i32);
    fn get_status_code() -> i32;
    fn set_status_code(code: i32);
    fn read_body(kind: i32, buf: *mut u8, buf_limit: i32) -> i64;
    fn write_body(kind: i32, buf: *const u8, buf_len: i32);
}

#[cfg(test)]
use mock_host::*;

/// Which header map a call is about (http-wasm's `header_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum HeaderKind {
    Request = 0,
    Response = 1,
}

/// Which body a call is about (http-wasm's `body_kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum BodyKind {
    Request = 0,
    Response = 1,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum LogLevel {
    Info = 0,
    Warn = 1,
    Error = 2,
}

/// http-wasm's feature bit that makes the host buffer the response, so `handle_response` may read and change
/// its headers and body.
const FEATURE_BUFFER_RESPONSE: i32 = 2;

/// `handle_request`'s packed answer: the low 32 bits say whether the host calls the next handler (the
/// upstream), the high 32 bits are the context handed back to `handle_response`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestOutcome {
    pub call_next: bool,
    pub context: u32,
}

impl RequestOutcome {
    pub fn packed(self) -> i64 {
        (i64::from(self.context) << 32) | i64::from(self.call_next)
    }
}

/// A packed (high 32 bits, low 32 bits) answer: `get_header_values` gives (count, length), `read_body` gives
/// (end of body, length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packed {
    pub high: u32,
    pub len: usize,
}

impl Packed {
    pub fn from(value: i64) -> Self {
        Packed {
            high: (value >> 32) as u32,
            len: (value & 0xffff_ffff) as usize,
        }
    }
}

/// Reads start with this buffer and grow it only for a larger value (a 64 KiB URI, say).
const INITIAL_BUFFER: usize = 2048;

fn len_i32(len: usize) -> i32 {
    i32::try_from(len).unwrap_or(i32::MAX)
}

/// Calls a host read with the buffer, growing it once when the value is larger; returns the value's length
/// within the buffer.
pub fn read_into(buf: &mut Vec<u8>, mut read: impl FnMut(*mut u8, i32) -> i64) -> usize {
    if buf.len() < INITIAL_BUFFER {
        buf.resize(INITIAL_BUFFER, 0);
    }
    let mut len = Packed::from(read(buf.as_mut_ptr(), len_i32(buf.len()))).len;
    if len > buf.len() {
        buf.resize(len, 0);
        len = Packed::from(read(buf.as_mut_ptr(), len_i32(buf.len()))).len;
    }
    len.min(buf.len())
}

/// The middleware's options as Traefik hands them over (JSON).
pub fn config(buf: &mut Vec<u8>) -> &[u8] {
    // SAFETY: the host writes at most `limit` bytes into `b`.
    let len = read_into(buf, |b, limit| i64::from(unsafe { get_config(b, limit) }));
    buf.get(..len).unwrap_or_default()
}

pub fn method(buf: &mut Vec<u8>) -> &[u8] {
    // SAFETY: the host writes at most `limit` bytes into `b`.
    let len = read_into(buf, |b, limit| i64::from(unsafe { get_method(b, limit) }));
    buf.get(..len).unwrap_or_default()
}

/// The request URI: path and query.
pub fn uri(buf: &mut Vec<u8>) -> &[u8] {
    // SAFETY: the host writes at most `limit` bytes into `b`.
    let len = read_into(buf, |b, limit| i64::from(unsafe { get_uri(b, limit) }));
    buf.get(..len).unwrap_or_default()
}

/// The first value of a header (the host writes every value, each followed by a NUL); None when absent.
pub fn first_header_value<'a>(
    buf: &'a mut Vec<u8>,
    kind: HeaderKind,
    name: &str,
) -> Option<&'a [u8]> {
    let name_len = i32::try_from(name.len()).ok()?;
    let mut count = 0;
    let len = read_into(buf, |b, limit| {
        // SAFETY: the host reads `name_len` bytes of name and writes at most `limit` bytes into `b`.
        let packed = unsafe { get_header_values(kind as i32, name.as_ptr(), name_len, b, limit) };
        count = Packed::from(packed).high;
        packed
    });
    if count == 0 {
        return None;
    }
    let values = buf.get(..len)?;
    // One value ends at the NUL the host wrote last: no scan for it (each read would walk its value).
    if let (1, Some((0, value))) = (count, values.split_last()) {
        return Some(value);
    }
    let end = values.iter().position(|b| *b == 0).unwrap_or(values.len());
    values.get(..end)
}

fn name_value_lens(name: &str, value: &str) -> Option<(i32, i32)> {
    Some((
        i32::try_from(name.len()).ok()?,
        i32::try_from(value.len()).ok()?,
    ))
}

/// Replaces every value of a header.
pub fn set_header(kind: HeaderKind, name: &str, value: &str) {
    if let Some((n, v)) = name_value_lens(name, value) {
        // SAFETY: the host reads `n` and `v` bytes from live &strs.
        unsafe { set_header_value(kind as i32, name.as_ptr(), n, value.as_ptr(), v) }
    }
}

/// Adds one more value of a header.
pub fn add_header(kind: HeaderKind, name: &str, value: &str) {
    if let Some((n, v)) = name_value_lens(name, value) {
        // SAFETY: the host reads `n` and `v` bytes from live &strs.
        unsafe { add_header_value(kind as i32, name.as_ptr(), n, value.as_ptr(), v) }
    }
}

pub fn delete_header(kind: HeaderKind, name: &str) {
    if let Ok(n) = i32::try_from(name.len()) {
        // SAFETY: the host reads `n` bytes from a live &str.
        unsafe { remove_header(kind as i32, name.as_ptr(), n) }
    }
}

/// The response status; valid in `handle_response` when the response is buffered.
pub fn status_code() -> Option<u16> {
    // SAFETY: a plain host call.
    u16::try_from(unsafe { get_status_code() }).ok()
}

pub fn set_status(code: u16) {
    // SAFETY: a plain host call.
    unsafe { set_status_code(i32::from(code)) }
}

/// Asks the host to buffer this request's response (it applies to this request only).
pub fn buffer_response() {
    // SAFETY: a plain host call.
    unsafe { enable_features(FEATURE_BUFFER_RESPONSE) };
}

pub fn write_log(level: LogLevel, message: &str) {
    // SAFETY: the host reads `len` bytes from a live &str.
    unsafe { log(level as i32, message.as_ptr(), len_i32(message.len())) }
}

/// The request or response body, at most `max` bytes of it, read in chunks of at most 64 KiB straight into
/// the vector's spare capacity (zero-filling 64 KiB per chunk first cost more than reading a 10 KiB page).
/// Reading a buffered body consumes it.
pub fn read_whole_body(kind: BodyKind, max: usize) -> Vec<u8> {
    const CHUNK: usize = 64 * 1024;
    let mut body: Vec<u8> = Vec::new();
    while body.len() < max {
        let len = body.len();
        body.reserve(CHUNK.min(max - len));
        let room = body.spare_capacity_mut();
        let room_len = room.len().min(max - len);
        // SAFETY: the host writes at most `room_len` bytes into the vector's spare capacity.
        let packed = unsafe { read_body(kind as i32, room.as_mut_ptr().cast(), len_i32(room_len)) };
        let Packed {
            high: eof,
            len: read,
        } = Packed::from(packed);
        let read = read.min(room_len);
        // SAFETY: the host initialised the first `read` bytes of the spare capacity.
        unsafe { body.set_len(len + read) };
        if eof != 0 || read == 0 {
            break;
        }
    }
    body
}

/// Writes (appends to) a body, in chunks the ABI's i32 lengths can carry.
pub fn write_whole_body(kind: BodyKind, body: &[u8]) {
    for chunk in body.chunks(1 << 20) {
        // SAFETY: the host copies `chunk` from a live slice.
        unsafe { write_body(kind as i32, chunk.as_ptr(), len_i32(chunk.len())) }
    }
}

/// A host for native tests: the request and response as Traefik would present them, and a record of every
/// write, with the ABI's signatures and packed answers.
#[cfg(test)]
pub mod mock_host {
    use std::cell::RefCell;

    #[derive(Default, Debug)]
    pub struct MockHost {
        pub config: Vec<u8>,
        pub method: Vec<u8>,
        pub uri: Vec<u8>,
        /// Per kind (request, response): name and value pairs.
        pub headers: [Vec<(String, String)>; 2],
        pub status: i32,
        /// Per kind: what a read yields, and at most how much per call (like a body in chunks).
        pub bodies: [Vec<u8>; 2],
        pub read_chunk: usize,
        pub written_bodies: [Vec<u8>; 2],
        pub logs: Vec<(i32, String)>,
        pub features: i32,
        /// Calls of each read import, to check the buffer grows once.
        pub reads: usize,
        /// Every header, URI, method and status call, in order (`"get_header_values 1 content-type"`), to check
        /// which host calls a path makes.
        pub calls: Vec<String>,
    }

    fn record(call: String) {
        HOST.with(|h| h.borrow_mut().calls.push(call));
    }

    thread_local! {
        pub static HOST: RefCell<MockHost> = RefCell::new(MockHost::default());
    }

    pub fn with_host<T>(setup: impl FnOnce(&mut MockHost), f: impl FnOnce() -> T) -> (T, MockHost) {
        HOST.with(|h| {
            *h.borrow_mut() = MockHost {
                read_chunk: usize::MAX,
                ..MockHost::default()
            };
            setup(&mut h.borrow_mut());
        });
        let result = f();
        (result, HOST.with(|h| h.take()))
    }

    unsafe fn text(ptr: *const u8, len: i32) -> String {
        // SAFETY: the guest passes a live buffer of `len` bytes.
        String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(ptr, len as usize) })
            .into_owned()
    }

    /// Writes `value` if it fits and answers its length, as the host does.
    unsafe fn answer(value: &[u8], buf: *mut u8, limit: i32) -> i32 {
        HOST.with(|h| h.borrow_mut().reads += 1);
        if value.len() <= limit as usize {
            // SAFETY: the guest's buffer holds `limit` bytes.
            unsafe { std::ptr::copy_nonoverlapping(value.as_ptr(), buf, value.len()) };
        }
        value.len() as i32
    }

    pub unsafe fn enable_features(features: i32) -> i32 {
        record(format!("enable_features {features}"));
        HOST.with(|h| {
            let mut host = h.borrow_mut();
            host.features |= features;
            host.features
        })
    }

    pub unsafe fn get_config(buf: *mut u8, limit: i32) -> i32 {
        let value = HOST.with(|h| h.borrow().config.clone());
        // SAFETY: the guest's buffer.
        unsafe { answer(&value, buf, limit) }
    }

    pub unsafe fn log(level: i32, message: *const u8, len: i32) {
        // SAFETY: a live buffer from the guest.
        let message = unsafe { text(message, len) };
        HOST.with(|h| h.borrow_mut().logs.push((level, message)));
    }

    pub unsafe fn get_method(buf: *mut u8, limit: i32) -> i32 {
        record("get_method".into());
        let value = HOST.with(|h| h.borrow().method.clone());
        // SAFETY: the guest's buffer.
        unsafe { answer(&value, buf, limit) }
    }

    pub unsafe fn get_uri(buf: *mut u8, limit: i32) -> i32 {
        record("get_uri".into());
        let value = HOST.with(|h| h.borrow().uri.clone());
        // SAFETY: the guest's buffer.
        unsafe { answer(&value, buf, limit) }
    }

    pub unsafe fn get_header_values(
        kind: i32,
        name: *const u8,
        name_len: i32,
        buf: *mut u8,
        limit: i32,
    ) -> i64 {
        // SAFETY: a live buffer from the guest.
        let name = unsafe { text(name, name_len) };
        record(format!("get_header_values {kind} {name}"));
        let (count, values) = HOST.with(|h| {
            let host = h.borrow();
            let values: Vec<&String> = host.headers[kind as usize]
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(&name))
                .map(|(_, v)| v)
                .collect();
            let mut joined = Vec::new();
            for value in &values {
                joined.extend_from_slice(value.as_bytes());
                joined.push(0);
            }
            (values.len() as i64, joined)
        });
        // SAFETY: the guest's buffer.
        let len = unsafe { answer(&values, buf, limit) };
        (count << 32) | i64::from(len)
    }

    pub unsafe fn set_header_value(kind: i32, name: *const u8, n: i32, value: *const u8, v: i32) {
        // SAFETY: live buffers from the guest.
        let (name, value) = unsafe { (text(name, n), text(value, v)) };
        record(format!("set_header_value {kind} {name}"));
        HOST.with(|h| {
            let headers = &mut h.borrow_mut().headers[kind as usize];
            headers.retain(|(existing, _)| !existing.eq_ignore_ascii_case(&name));
            headers.push((name, value));
        });
    }

    pub unsafe fn add_header_value(kind: i32, name: *const u8, n: i32, value: *const u8, v: i32) {
        // SAFETY: live buffers from the guest.
        let pair = unsafe { (text(name, n), text(value, v)) };
        record(format!("add_header_value {kind} {}", pair.0));
        HOST.with(|h| h.borrow_mut().headers[kind as usize].push(pair));
    }

    pub unsafe fn remove_header(kind: i32, name: *const u8, n: i32) {
        // SAFETY: a live buffer from the guest.
        let name = unsafe { text(name, n) };
        record(format!("remove_header {kind} {name}"));
        HOST.with(|h| {
            h.borrow_mut().headers[kind as usize]
                .retain(|(existing, _)| !existing.eq_ignore_ascii_case(&name))
        });
    }

    pub unsafe fn get_status_code() -> i32 {
        record("get_status_code".into());
        HOST.with(|h| h.borrow().status)
    }

    pub unsafe fn set_status_code(code: i32) {
        HOST.with(|h| h.borrow_mut().status = code);
    }

    pub unsafe fn read_body(kind: i32, buf: *mut u8, limit: i32) -> i64 {
        HOST.with(|h| {
            let mut host = h.borrow_mut();
            let take = host.bodies[kind as usize]
                .len()
                .min(limit as usize)
                .min(host.read_chunk);
            let chunk: Vec<u8> = host.bodies[kind as usize].drain(..take).collect();
            // SAFETY: the guest's buffer holds `limit` bytes.
            unsafe { std::ptr::copy_nonoverlapping(chunk.as_ptr(), buf, chunk.len()) };
            let eof = i64::from(host.bodies[kind as usize].is_empty());
            (eof << 32) | chunk.len() as i64
        })
    }

    pub unsafe fn write_body(kind: i32, buf: *const u8, len: i32) {
        // SAFETY: a live buffer from the guest.
        let bytes = unsafe { std::slice::from_raw_parts(buf, len as usize) }.to_vec();
        HOST.with(|h| h.borrow_mut().written_bodies[kind as usize].extend(bytes));
    }
}

#[cfg(test)]
mod tests {
    use super::mock_host::with_host;
    use super::*;

    #[test]
    fn packed_values_say_what_the_abi_means() {
        let held = RequestOutcome {
            call_next: true,
            context: 1,
        };
        assert_eq!(held.packed(), (1 << 32) | 1);
        let answered = RequestOutcome {
            call_next: false,
            context: 0,
        };
        assert_eq!(answered.packed(), 0);
        assert_eq!(Packed::from((3 << 32) | 17), Packed { high: 3, len: 17 });
        assert_eq!(
            Packed::from(-1),
            Packed {
                high: u32::MAX,
                len: 0xffff_ffff
            }
        );
    }

    #[test]
    fn a_read_grows_the_buffer_once_for_a_large_value() {
        let long_uri = format!("/{}", "a".repeat(64 * 1024));
        let ((short, long), host) = with_host(
            |host| host.uri = b"/".to_vec(),
            || {
                let mut buf = Vec::new();
                let short = uri(&mut buf).to_vec();
                super::mock_host::HOST.with(|h| h.borrow_mut().uri = long_uri.clone().into_bytes());
                (short, uri(&mut buf).to_vec())
            },
        );
        assert_eq!(short, b"/");
        assert_eq!(long, long_uri.as_bytes());
        assert_eq!(
            host.reads, 3,
            "one read, then one too small and one after growing"
        );
    }

    #[test]
    fn a_header_read_gives_the_first_value_and_tells_absent_from_empty() {
        let ((first, one, empty, absent), _) = with_host(
            |host| {
                host.headers[0] = vec![
                    ("Accept".into(), "text/html".into()),
                    ("accept".into(), "*/*".into()),
                    ("x-one".into(), "only".into()),
                    ("x-empty".into(), String::new()),
                ]
            },
            || {
                let mut buf = Vec::new();
                (
                    first_header_value(&mut buf, HeaderKind::Request, "accept").map(<[u8]>::to_vec),
                    first_header_value(&mut buf, HeaderKind::Request, "x-one").map(<[u8]>::to_vec),
                    first_header_value(&mut buf, HeaderKind::Request, "x-empty")
                        .map(<[u8]>::to_vec),
                    first_header_value(&mut buf, HeaderKind::Request, "x-absent")
                        .map(<[u8]>::to_vec),
                )
            },
        );
        assert_eq!(first.as_deref(), Some(&b"text/html"[..]));
        assert_eq!(one.as_deref(), Some(&b"only"[..]));
        assert_eq!(empty.as_deref(), Some(&b""[..]));
        assert_eq!(absent, None);
    }

    #[test]
    fn a_body_is_read_whole_in_chunks_up_to_the_cap() {
        let body: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        for (max, chunk) in [(usize::MAX, 1000), (usize::MAX, usize::MAX), (70_001, 4096)] {
            let expected = body.get(..max.min(body.len())).unwrap().to_vec();
            let (read, _) = with_host(
                |host| {
                    host.bodies[1] = body.clone();
                    host.read_chunk = chunk;
                },
                || read_whole_body(BodyKind::Response, max),
            );
            assert_eq!(read, expected, "max {max}, chunk {chunk}");
        }
    }

    #[test]
    fn writes_reach_the_kind_they_name() {
        let ((), host) = with_host(
            |host| host.headers[1] = vec![("server".into(), "x".into())],
            || {
                set_header(HeaderKind::Response, "x-frame-options", "DENY");
                add_header(HeaderKind::Response, "vary", "a");
                delete_header(HeaderKind::Response, "server");
                set_header(HeaderKind::Request, "accept-encoding", "identity");
                set_status(405);
                write_whole_body(BodyKind::Response, b"no");
                buffer_response();
            },
        );
        assert_eq!(
            host.headers[1],
            vec![
                ("x-frame-options".to_string(), "DENY".to_string()),
                ("vary".to_string(), "a".to_string())
            ]
        );
        assert_eq!(
            host.headers[0],
            vec![("accept-encoding".to_string(), "identity".to_string())]
        );
        assert_eq!(
            (host.status, host.written_bodies[1].as_slice()),
            (405, &b"no"[..])
        );
        assert_eq!(host.features, FEATURE_BUFFER_RESPONSE);
    }
}
