"""The `secure-headers` CLI against the real upstream, real Envoy and real Traefik: check, baseline and --against,
--policy, the ZAP rules it shares with zap_rules.py, and bad input as one line and a non-zero exit."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import zap_rules
from secure_headers_harness.paths import CERTS, CLI, ROOT, TRAEFIK_DYNAMIC
from secure_headers_harness.processes import free_port

IMMICH = '{"presets": ["immich"]}'
# What the immich preset documents it leaves (README, "Presets"): 'unsafe-inline' without inline_script_hashes,
# and no COOP/COEP (they break Immich's cast and map); the ZAP rules raise these, and nothing else may remain.
DOCUMENTED = {"10055", "90004"}
# The seed's ZAP findings (shared/seeds/002) the bare upstream must show: clickjacking, X-Content-Type-Options,
# CSP not set, Permissions-Policy not set, CORP missing, X-Powered-By, favicon without Content-Type.
SEED_FINDINGS = {"10020", "10021", "10038", "10063", "90004", "10037", "10019"}


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    if not CLI.exists():
        pytest.fail(f"{CLI} is missing: run `make cli` (make e2e does it)")
    return subprocess.run([str(CLI), *args], input=stdin, capture_output=True, text=True, timeout=120)


def check_json(*args: str) -> dict:
    run = cli("check", "--json", "--fail-on", "high", *args)
    assert run.stdout, run.stderr
    return json.loads(run.stdout)


def ids(report: dict) -> set[str]:
    return {f["id"] for f in report["findings"]}


def test_bare_upstream_shows_every_seed_finding(upstream):
    base = f"http://127.0.0.1:{upstream.port}"
    result = check_json(f"{base}/", f"{base}/favicon.ico")
    found = set().union(*(ids(r) for r in result["reports"]))
    assert SEED_FINDINGS <= found, f"missing {SEED_FINDINGS - found}"
    assert result["summary"].startswith("summary: 4 response(s), 0 error(s)")


def test_fail_on_chooses_the_severity_that_fails(upstream):
    url = f"http://127.0.0.1:{upstream.port}/"
    assert cli("check", url, "--fail-on", "high").returncode == 0, "the bare upstream's worst finding is medium"
    medium = cli("check", url, "--fail-on", "medium")
    assert medium.returncode == 1
    assert "[Medium] 10038 no Content-Security-Policy" in medium.stdout


def test_crawl_adds_what_the_page_references_as_the_browser_fetches_it(upstream):
    result = check_json(f"http://127.0.0.1:{upstream.port}/", "--crawl", "5")
    crawled = [r for r in result["reports"] if r["style"] not in ("document", "scanner")]
    assert crawled, [r["url"] for r in result["reports"]]
    assert all(r["url"].startswith(f"http://127.0.0.1:{upstream.port}/") for r in crawled)
    scripts = [r for r in crawled if r["url"].endswith(".js")]
    assert scripts and all(r["style"] == "asset" for r in scripts), crawled


@pytest.fixture
def policy_file(tmp_path):
    def write(text: str) -> str:
        path = tmp_path / f"policy-{abs(hash(text))}.json"
        path.write_text(text)
        return str(path)
    return write


def test_through_the_host_the_policy_holds_and_only_documented_findings_remain(proxy_for, host, policy_file):
    proxy = proxy_for(host, IMMICH)
    url = f"http://127.0.0.1:{proxy.server.ports['http']}/"
    run = cli("check", url, "--policy", policy_file(IMMICH), "--json")
    result = json.loads(run.stdout)
    assert run.returncode == 0, run.stdout + run.stderr
    assert len(result["reports"]) == 2, "a navigation and a scanner fetch"
    for report in result["reports"]:
        assert "policy" not in ids(report), report["findings"]
        assert ids(report) <= DOCUMENTED, report["findings"]
        assert any(f["id"] == "10055" and "unsafe-inline" in f["detail"] for f in report["findings"])


def test_a_missing_middleware_is_a_policy_difference(upstream, policy_file):
    run = cli("check", f"http://127.0.0.1:{upstream.port}/", "--policy", policy_file(IMMICH))
    assert run.returncode == 1, "a high finding fails the default --fail-on high"
    assert "policy x-content-type-options: the policy gives [\"nosniff\"], arrived []" in run.stdout
    assert run.stdout.splitlines()[-1].startswith("summary: 2 response(s), 0 error(s); findings: ")


def test_check_policy_names_what_traefik_cannot_give_a_streamed_response(proxy_for, host, policy_file):
    """/api/ is under the immich preset's streaming_paths: Traefik streams it, and a streamed response never gets
    what the policy decides from the response (README, "What streams, what is held"). `check --policy` names each
    such header there; through Envoy, which decides on every response, nothing differs."""
    proxy = proxy_for(host, IMMICH)
    run = cli("check", f"http://127.0.0.1:{proxy.server.ports['http']}/api/server/ping", "--policy",
              policy_file(IMMICH), "--json")
    reports = json.loads(run.stdout)["reports"]
    assert [r["status"] for r in reports] == [200, 200], run.stdout + run.stderr
    for report in reports:
        differences = {f["detail"].split(":")[0] for f in report["findings"] if f["id"] == "policy"}
        if proxy.streamed_lacks_response_decisions:
            # keep_upstream's CSP: written only when the app sends none, which a streamed response cannot know.
            assert differences == {"content-security-policy"}, (report["style"], report["findings"])
        else:
            assert differences == set(), (report["style"], report["findings"])
    assert run.returncode == (1 if proxy.streamed_lacks_response_decisions else 0), "a policy finding is high"


def test_baseline_then_check_against_reports_exactly_the_changed_headers(proxy_for, tmp_path):
    before = proxy_for("envoy", IMMICH)
    after = proxy_for("envoy", '{"presets": ["immich"], "referrer_policy": "same-origin"}')
    baseline = tmp_path / "baseline.json"
    run = cli("baseline", f"http://127.0.0.1:{before.server.ports['http']}/", "--out", str(baseline))
    assert run.returncode == 0, run.stderr
    entries = json.loads(baseline.read_text())["entries"]
    assert [e["style"] for e in entries] == ["document", "scanner"]
    # The same URL as the baseline's, now served by the changed policy: rewrite the port only.
    data = json.loads(baseline.read_text())
    new_url = f"http://127.0.0.1:{after.server.ports['http']}/"
    for entry in data["entries"]:
        entry["url"] = new_url
    baseline.write_text(json.dumps(data))
    result = check_json(new_url, "--against", str(baseline))
    for report in result["reports"]:
        changed = [f["detail"] for f in report["findings"] if f["id"] == "changed"]
        assert changed == ["referrer-policy: [\"no-referrer\"] -> [\"same-origin\"]"], changed


def test_the_zap_rules_agree_with_zap_rules_py_on_the_same_responses(upstream, proxy_for, tmp_path):
    """One response set, two implementations of the seven shared rules: the findings must be the same."""
    shared = {str(rule) for rule in zap_rules.RULES}
    urls = [f"http://127.0.0.1:{upstream.port}/", f"http://127.0.0.1:{upstream.port}/favicon.ico",
            f"http://127.0.0.1:{proxy_for('envoy', IMMICH).server.ports['http']}/"]
    baseline = tmp_path / "b.json"
    assert cli("baseline", *urls, "--out", str(baseline)).returncode == 0
    entries = json.loads(baseline.read_text())["entries"]
    reports = check_json(*urls)["reports"]
    assert len(entries) == len(reports) == 6
    for entry, report in zip(entries, reports):
        headers = [(n, v.encode("latin-1")) for n, v in entry["headers"]]
        python = {str(f.rule) for f in zap_rules.scan(entry["status"], headers, https=False)}
        assert ids(report) & shared == python, (entry["url"], entry["style"], report["findings"])


def test_validate_prints_the_envoy_line_and_fails(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"hsst": {"max_age": 1}}')
    run = cli("validate", str(bad))
    assert run.returncode == 1
    assert run.stdout.startswith("secure-headers: invalid policy at hsst: unknown field `hsst`")
    assert len(run.stdout.splitlines()) == 1
    good = cli("validate", str(TRAEFIK_DYNAMIC))
    assert good.returncode == 0, good.stdout + good.stderr
    # The YAML-keys form, read as the plugin reads Traefik's options (strings for numbers).
    keys = tmp_path / "dynamic.yml"
    keys.write_text("http:\n  middlewares:\n    secure-headers:\n      plugin:\n        secureheaders:\n"
                    "          presets: [immich]\n          hsts:\n            max_age: \"-5\"\n")
    run = cli("validate", str(keys), str(bad))
    assert run.returncode == 1
    assert run.stdout.splitlines() == [
        f"{keys}: secure-headers: invalid policy at hsts.max_age: invalid value: integer `-5`, expected u64",
        run.stdout.splitlines()[1],
    ] and run.stdout.splitlines()[1].startswith(f"{bad}: secure-headers: invalid policy at hsst: ")


class _Odd(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (the stdlib's name)
        self.send_response(302)
        self.send_header("Location", "/loop-b" if self.path == "/loop-a" else "/loop-a")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def redirect_loop():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Odd)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/loop-a"
    server.shutdown()


@pytest.fixture(scope="module")
def not_http():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def answer():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
            conn.close()
    threading.Thread(target=answer, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    listener.close()


@pytest.fixture(scope="module")
def silent():
    """Accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    held = []

    def hold():
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return
    threading.Thread(target=hold, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    listener.close()
    for conn in held:
        conn.close()


def one_error_line(run: subprocess.CompletedProcess) -> str:
    """The run failed with exactly one line naming the problem, and no traceback or panic."""
    assert run.returncode != 0, run.stdout + run.stderr
    output = (run.stdout + run.stderr).strip()
    assert "Traceback" not in output and "panicked" not in output
    error_lines = [line for line in output.splitlines() if "secure-headers:" in line]
    assert len(error_lines) == 1, output
    return error_lines[0]


@pytest.mark.parametrize("case", ["no such file", "invalid URL", "connection refused", "64 KiB header",
                                  "redirect loop", "not HTTP", "no answer within --timeout", "--ca not PEM"])
def test_bad_input_is_one_clear_line_and_a_non_zero_exit(case, upstream, redirect_loop, not_http, silent):
    args, want = {
        "no such file": (["validate", "/no/such/policy.json"], "No such file"),
        "invalid URL": (["check", "not a url"], "not a URL"),
        "connection refused": (["check", f"http://127.0.0.1:{free_port()}/"], "connection refused"),
        "64 KiB header": (["check", f"http://127.0.0.1:{upstream.port}/hostile?big=65536"],
                          "response headers larger than"),
        "redirect loop": (["check", redirect_loop], "redirect loop"),
        "not HTTP": (["check", not_http], "not HTTP"),
        "no answer within --timeout": (["check", silent, "--timeout", "1"], "no answer within 1 s (--timeout)"),
        "--ca not PEM": (["check", f"http://127.0.0.1:{upstream.port}/", "--ca", str(TRAEFIK_DYNAMIC)],
                         "no PEM certificate in it"),
    }[case]
    line = one_error_line(cli(*args))
    assert want in line, line


def test_certificates_are_verified_unless_the_operator_says_otherwise(proxy_for, host):
    """The hosts serve https with the test CA's certificate: refused by default (with the way out named), fetched
    with --ca (that CA trusted) or --insecure (no check). The https-only header shows the fetch really was https."""
    url = f"https://localhost:{proxy_for(host, IMMICH).server.ports['https']}/"
    line = one_error_line(cli("check", url))
    assert "certificate" in line and "--ca FILE" in line and "--insecure" in line, line
    for trust in (["--ca", str(CERTS / "ca.crt")], ["--insecure"]):
        run = cli("check", url, "--json", *trust)
        assert run.returncode == 0, run.stdout + run.stderr
        result = json.loads(run.stdout)
        assert result["summary"].startswith("summary: 2 response(s), 0 error(s)"), (trust, result["summary"])
        for report in result["reports"]:
            assert "strict-transport-security" in {name for name, _ in report["present"]}, (trust, report)
    # A CA that did not sign the host's certificate is no trust at all.
    other_ca = cli("check", url, "--ca", "/etc/ssl/certs/ca-certificates.crt")
    assert "certificate" in one_error_line(other_ca)


def test_demo_names_a_taken_port_in_one_line():
    """Another process on a demo port (here the upstream's, unless someone already holds it): one line, no
    traceback, and no talking to the other process."""
    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", 3001))
        holder.listen()
    except OSError:
        pass  # already held by another process, which is the case under test as well
    try:
        run = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-m", "secure_headers_harness.demo"],
                             capture_output=True, text=True, timeout=60)
    finally:
        holder.close()
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "port" in run.stderr and "is already in use by another process" in run.stderr
