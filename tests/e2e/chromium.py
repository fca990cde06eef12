"""Debian's Chromium, headless, driven by Playwright, for the browser tests.

Each `Chromium` has its own HOME (whose NSS database trusts the test CA, so https to the test names is a valid
certificate: browsers ignore HSTS on certificate errors) and maps the test host names to loopback with
`--host-resolver-rules`, including ports 80/443 to the proxy's listeners, so that HSTS upgrades
http://immich.test/ to https://immich.test/ exactly as for a real site (IP literals never get HSTS)."""

from __future__ import annotations

import shutil
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from secure_headers_harness.paths import CERTS, work_dir
from playwright.sync_api import Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps dialling Google on a machine with no route out.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-default-apps", "--metrics-recording-only",
         "--autoplay-policy=no-user-gesture-required"]
NAMES = ["immich.test", "other.test", "fresh.immich.test"]

# Runs before any script of the page: records every CSP violation the page raises, and gives pages a `ran(name)`
# to record the scripts that ran (the inline-script table's documents call it).
RECORD_VIOLATIONS = """
window.__ran = [];
window.ran = (name) => window.__ran.push(name);
window.__violations = [];
document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(
  {directive: e.effectiveDirective, blocked: e.blockedURI, disposition: e.disposition, sample: e.sample}));
"""


def trust_test_ca(home: Path) -> None:
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    certutil = shutil.which("certutil")
    if not certutil:
        raise RuntimeError("certutil is missing: `make browser-tools` installs libnss3-tools")
    subprocess.run([certutil, "-d", f"sql:{nssdb}", "-N", "--empty-password"], check=True)
    subprocess.run([certutil, "-d", f"sql:{nssdb}", "-A", "-t", "C,,", "-n", "secure-headers-test-ca",
                    "-i", str(CERTS / "ca.crt")], check=True)


class Chromium:
    """One headless browser whose test names reach the proxy at `http_port` (as port 80) and `https_port` (443)."""

    def __init__(self, http_port: int, https_port: int):
        if not Path(CHROMIUM).exists():
            raise RuntimeError(f"{CHROMIUM} is missing: `make browser-tools` installs Debian's chromium")
        self.home = work_dir("chromium")
        trust_test_ca(self.home)
        rules = []
        for name in NAMES:
            rules += [f"MAP {name}:80 127.0.0.1:{http_port}", f"MAP {name}:443 127.0.0.1:{https_port}",
                      f"MAP {name} 127.0.0.1"]
        self.playwright = sync_playwright().start()
        self.browser = self.playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=FLAGS + [f"--host-resolver-rules={', '.join(rules)}"],
            env={"HOME": str(self.home), "PATH": "/usr/bin:/bin"})
        self.context = self.browser.new_context()
        self.context.add_init_script(RECORD_VIOLATIONS)
        self.console: list[str] = []

    def open(self, url: str, wait_for: str | None = None, timeout_ms: int = 10_000) -> Page:
        """Opens `url` in a new tab; waits for the JS expression `wait_for` to be true when given."""
        page = self.context.new_page()
        page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))
        page.goto(url, wait_until="load", timeout=timeout_ms)
        if wait_for:
            self.wait(page, wait_for, timeout_ms)
        return page

    @staticmethod
    def wait(page: Page, condition: str, timeout_ms: int = 10_000) -> None:
        """Polls the JS expression `condition` until true. Not Playwright's wait_for_function: once its first check
        fails it evaluates the string with eval, which a CSP without 'unsafe-eval' refuses (a flaky EvalError)."""
        deadline = time.monotonic() + timeout_ms / 1000
        while not page.evaluate(condition):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{condition} still false after {timeout_ms} ms")
            time.sleep(0.05)

    @staticmethod
    def violations(page: Page) -> list[dict]:
        return page.evaluate("window.__violations")

    def close(self) -> None:
        self.context.close()
        self.browser.close()
        self.playwright.stop()

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextmanager
def chromium_through(proxy) -> Iterator[Chromium]:
    """Headless Chromium that reaches the test hosts through `proxy` (conftest's Proxy), closed afterwards."""
    chromium = Chromium(proxy.server.ports["http"], proxy.server.ports["https"])
    try:
        yield chromium
    finally:
        chromium.close()
