"""The OWASP ZAP baseline's passive header rules that the rollout plan's scan reports, written from ZAP's published
rule descriptions (zaproxy.org/docs/alerts/<id> and the pscanrules help), judged on one response's status and
headers. Where ZAP's default (MEDIUM) threshold is looser than what the seed needs, the rule here is stricter,
and says so: a response that passes here passes ZAP.

How each rule is judged:
- 10020 Anti-clickjacking Header: HTML responses (Content-Type contains `html`) that are not errors or
  redirects (status < 300). No alert when the CSP has `frame-ancestors`; otherwise X-Frame-Options must be
  present once with DENY or SAMEORIGIN.
- 10021 X-Content-Type-Options Header Missing: every response that is not an error or a redirect (ZAP also skips
  responses without a body; here a HEAD or 304 is judged too, stricter). The header must be `nosniff`, once.
- 10035 Strict-Transport-Security: on https responses the header must be present once with a numeric,
  non-zero max-age; on plain http responses it must be absent (ZAP's "Header on Plain HTTP Response").
  Redirects are judged too (ZAP judges same-domain https redirects only at LOW, stricter).
- 10036 HTTP Server Response Header: ZAP alerts at MEDIUM when Server carries a version; here any Server header
  is a finding (ZAP's LOW threshold), for every response.
- 10037 X-Powered-By: any X-Powered-By header, on every response.
- 10038 Content Security Policy Header Not Set: HTML responses that are not redirects need a
  Content-Security-Policy header (report-only alone does not count).
- 10063 Permissions Policy Header Not Set: HTML and JavaScript responses that are not errors or redirects need a
  Permissions-Policy header.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

RULES = {
    10020: "Missing Anti-clickjacking Header",
    10021: "X-Content-Type-Options Header Missing",
    10035: "Strict-Transport-Security Header",
    10036: "Server Leaks Information via Server",
    10037: "Server Leaks Information via X-Powered-By",
    10038: "Content Security Policy (CSP) Header Not Set",
    10063: "Permissions Policy Header Not Set",
}


@dataclass(frozen=True)
class Finding:
    rule: int
    detail: str

    def __str__(self) -> str:
        return f"{self.rule} {RULES[self.rule]}: {self.detail}"


def scan(status: int, headers: list[tuple[str, bytes]], https: bool) -> list[Finding]:
    """Every finding of the seven rules for one response."""
    def values(name: str) -> list[str]:
        return [v.decode("latin-1").strip() for n, v in headers if n.lower() == name]

    content_type = (values("content-type") or [""])[0].lower()
    html = "html" in content_type
    javascript = "javascript" in content_type or "ecmascript" in content_type
    ok = status < 300  # neither an error nor a redirect
    redirect = 300 <= status < 400
    findings = []

    csp = values("content-security-policy")
    if html and ok and not any("frame-ancestors" in c for c in csp):
        xfo = values("x-frame-options")
        if len(xfo) != 1 or xfo[0].upper() not in ("DENY", "SAMEORIGIN"):
            findings.append(Finding(10020, f"X-Frame-Options {xfo}"))
    if ok and values("x-content-type-options") != ["nosniff"]:
        findings.append(Finding(10021, f"X-Content-Type-Options {values('x-content-type-options')}"))
    hsts = values("strict-transport-security")
    if https:
        max_age = re.match(r'(?i)^max-age="?(\d+)"?', hsts[0]) if len(hsts) == 1 else None
        if max_age is None or int(max_age.group(1)) == 0:
            findings.append(Finding(10035, f"Strict-Transport-Security {hsts}"))
    elif hsts:
        findings.append(Finding(10035, f"Strict-Transport-Security on plain http: {hsts}"))
    if values("server"):
        findings.append(Finding(10036, f"Server {values('server')}"))
    if values("x-powered-by"):
        findings.append(Finding(10037, f"X-Powered-By {values('x-powered-by')}"))
    if html and not redirect and not csp:
        findings.append(Finding(10038, "no Content-Security-Policy"))
    if (html or javascript) and ok and not values("permissions-policy"):
        findings.append(Finding(10063, "no Permissions-Policy"))
    return findings
