//! The `traefik-middleware` subcommand as an operator runs it: the binary, a policy file, YAML out.

use serde_yaml::Value;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_secure-headers");
const IMMICH_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies/immich.json");

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.unwrap_or_default().as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn headers_of(output: &Output, name: &str) -> Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let yaml: Value = serde_yaml::from_slice(&output.stdout).unwrap();
    yaml["http"]["middlewares"][name]["headers"].clone()
}

#[test]
fn prints_the_immich_companion_for_the_routers_hosts() {
    let output = run(
        &["traefik-middleware", IMMICH_FILE, "--host", "immich.test"],
        None,
    );
    let headers = headers_of(&output, "secure-headers-streamed");
    let custom = &headers["customResponseHeaders"];
    for removed in ["x-powered-by", "server", "x-envoy-upstream-service-time"] {
        assert_eq!(custom[removed], Value::from(""), "{removed}");
    }
    assert_eq!(custom["x-content-type-options"], Value::from("nosniff"));
    assert_eq!(custom["x-frame-options"], Value::from("SAMEORIGIN"));
    assert_eq!(
        custom["x-xss-protection"],
        Value::from("0"),
        "a string, not a number"
    );
    assert!(custom.get("content-security-policy").is_none());
    assert_eq!(headers["stsSeconds"], Value::from(31_536_000));
    assert_eq!(headers["stsIncludeSubdomains"], Value::from(false));
    assert_eq!(
        headers["sslProxyHeaders"]["X-Forwarded-Proto"],
        Value::from("https")
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("# never on a streamed response: content-security-policy"));
}

#[test]
fn reads_stdin_and_names_the_middleware() {
    let output = run(
        &["traefik-middleware", "-", "--name", "hardening"],
        Some(r#"{"presets": ["bundle-a"]}"#),
    );
    let headers = headers_of(&output, "hardening");
    assert_eq!(
        headers["customResponseHeaders"]["x-frame-options"],
        Value::from("SAMEORIGIN")
    );
    assert!(headers.get("stsSeconds").is_none(), "bundle-a sets no HSTS");
}

#[test]
fn refuses_when_no_header_is_safe_and_names_bad_fields() {
    let output = run(&["traefik-middleware", IMMICH_FILE], None);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--host"));

    let output = run(
        &["traefik-middleware", "-"],
        Some(r#"{"hsts": {"max_age": 99999999999}}"#),
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("invalid policy at hsts.max_age"),
        "{stderr}"
    );
}

#[test]
fn reads_the_plugins_options_from_a_traefik_dynamic_configuration() {
    let dynamic = concat!(env!("CARGO_MANIFEST_DIR"), "/../traefik-test/dynamic.yml");
    let from_file = run(
        &["traefik-middleware", dynamic, "--host", "immich.test"],
        None,
    );
    let from_json = run(
        &["traefik-middleware", IMMICH_FILE, "--host", "immich.test"],
        None,
    );
    assert_eq!(
        headers_of(&from_file, "secure-headers-streamed"),
        headers_of(&from_json, "secure-headers-streamed")
    );

    let keys = "http:\n  middlewares:\n    hardening:\n      plugin:\n        secureheaders:\n          presets: [immich]\n          hsts: {max_age: \"600\"}\n";
    let dir = std::env::temp_dir().join(format!("secure-headers-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("dynamic.yml");
    std::fs::write(&path, keys).unwrap();
    let path = path.to_str().unwrap();
    let output = run(
        &["traefik-middleware", path, "--middleware", "hardening"],
        None,
    );
    assert_eq!(
        headers_of(&output, "secure-headers-streamed")["stsSeconds"],
        Value::from(600)
    );
    let missing = run(&["traefik-middleware", path], None);
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("http.middlewares.secure-headers.plugin")
    );
}
