//! Benchmark floor for Traefik: the host calls the `immich` preset's job cannot avoid, with no logic between
//! them. bench/run.py lists them in the plugin option `calls` (a JSON string, so Traefik does not re-encode
//! it): {"request": [op, ...], "buffer": bool, "response": [op, ...]}, each op one host call: ["uri"],
//! ["method"], ["status"], ["read", name] (a request header in `request`, a response header in `response`),
//! ["set", name, value] and ["remove", name] (response headers). `buffer` asks the host to buffer the
//! response (the held path; the response ops then run in handle_response); without it the request ops write
//! before the upstream answers (the streamed path) and there are no response ops.

use std::cell::RefCell;

#[link(wasm_import_module = "http_handler")]
extern "C" {
    fn enable_features(features: i32) -> i32;
    fn get_config(buf: *mut u8, buf_limit: i32) -> i32;
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
    fn remove_header(kind: i32, name: *const u8, name_len: i32);
    fn get_status_code() -> i32;
}

#[cfg(target_os = "wasi")]
extern "C" {
    fn __wasm_call_ctors();
}

const REQUEST: i32 = 0;
const RESPONSE: i32 = 1;
const BUFFER_RESPONSE: i32 = 2;

enum Op {
    Uri,
    Method,
    Status,
    Read(String),
    Set(String, String),
    Remove(String),
}

#[derive(Default)]
struct Calls {
    request: Vec<Op>,
    buffer: bool,
    response: Vec<Op>,
}

thread_local! {
    static CALLS: RefCell<Calls> = RefCell::default();
    /// Where reads land; the values are not looked at.
    static BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; 2048]);
}

fn ops(list: Option<&serde_json::Value>) -> Vec<Op> {
    let text = |op: &[serde_json::Value], i: usize| {
        op.get(i)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let list = list
        .and_then(serde_json::Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    list.iter()
        .filter_map(|op| {
            let op = op.as_array()?;
            Some(match op.first()?.as_str()? {
                "uri" => Op::Uri,
                "method" => Op::Method,
                "status" => Op::Status,
                "read" => Op::Read(text(op, 1)),
                "set" => Op::Set(text(op, 1), text(op, 2)),
                "remove" => Op::Remove(text(op, 1)),
                _ => return None,
            })
        })
        .collect()
}

#[no_mangle]
pub extern "C" fn _initialize() {
    // SAFETY: the WASI reactor contract: run static constructors once before anything else.
    #[cfg(target_os = "wasi")]
    unsafe {
        __wasm_call_ctors()
    };
    let mut config = vec![0u8; 1 << 16];
    // SAFETY: the host writes at most `limit` bytes into the buffer.
    let len = unsafe { get_config(config.as_mut_ptr(), config.len() as i32) } as usize;
    config.truncate(len);
    let options: serde_json::Value = serde_json::from_slice(&config).unwrap_or_default();
    let calls = options
        .get("calls")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("{}");
    let calls: serde_json::Value = serde_json::from_str(calls).unwrap_or_default();
    CALLS.with(|c| {
        *c.borrow_mut() = Calls {
            request: ops(calls.get("request")),
            buffer: calls
                .get("buffer")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false),
            response: ops(calls.get("response")),
        }
    });
}

fn run(ops: &[Op], read_kind: i32) {
    BUF.with(|buf| {
        let mut buf = buf.borrow_mut();
        let (buf, limit) = (buf.as_mut_ptr(), buf.len() as i32);
        for op in ops {
            // SAFETY (each call): the host reads names and values from live Strings and writes at most
            // `limit` bytes into the buffer.
            unsafe {
                match op {
                    Op::Uri => drop(get_uri(buf, limit)),
                    Op::Method => drop(get_method(buf, limit)),
                    Op::Status => drop(get_status_code()),
                    Op::Read(name) => drop(get_header_values(
                        read_kind,
                        name.as_ptr(),
                        name.len() as i32,
                        buf,
                        limit,
                    )),
                    Op::Set(name, value) => set_header_value(
                        RESPONSE,
                        name.as_ptr(),
                        name.len() as i32,
                        value.as_ptr(),
                        value.len() as i32,
                    ),
                    Op::Remove(name) => remove_header(RESPONSE, name.as_ptr(), name.len() as i32),
                }
            }
        }
    });
}

#[no_mangle]
pub extern "C" fn handle_request() -> i64 {
    CALLS.with(|calls| {
        let calls = calls.borrow();
        run(&calls.request, REQUEST);
        if calls.buffer {
            // SAFETY: a plain host call.
            unsafe { enable_features(BUFFER_RESPONSE) };
            (1 << 32) | 1
        } else {
            1
        }
    })
}

#[no_mangle]
pub extern "C" fn handle_response(req_ctx: i32, _is_error: i32) {
    if req_ctx == 1 {
        CALLS.with(|calls| run(&calls.borrow().response, RESPONSE));
    }
}
