"""The shape Pangolin gives Traefik, fed to real Traefik: an HTTP provider (a small local server, as Pangolin's
API is) serving a router per resource whose middlewares are badger (here a forwardAuth to an always-200 server),
then `traefik.additional_middlewares` (`secure-headers@file`, `secure-headers-streamed@file`), then the resource's
own response headers; and the file provider (Pangolin's dynamic_config.yml) holding the README's middleware and
its generated companion. An app with an exception keeps its own headers; Immich gets the preset. And one bad edit
of the policy under both `on_invalid_policy` choices: `refuse` takes every resource using the middleware down (404),
`pass` serves them without the plugin's headers and says so in the log."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
import yaml
from secure_headers_harness.http_client import request
from secure_headers_harness.served import Served
from readme_examples import example, middleware_options
from secure_headers_harness.traefik import PLUGIN_KEY, Traefik

ADDITIONAL_MIDDLEWARES = ["secure-headers@file", "secure-headers-streamed@file"]
LEGACY_CSP = "frame-ancestors https://sso.example.com; default-src 'self' 'unsafe-inline'"


RESOURCES = [(1, "photos.example.com", {"Cache-Control": "no-cache", "X-Pangolin-Resource": "immich"}),
             (2, "legacy.example.com", {"Content-Security-Policy": LEGACY_CSP}),
             (3, "wiki.example.com", None)]
REWRITTEN = 3  # the resource whose router has a path rewrite


def pangolin_config(upstream_port: int, badger_port: int,
                    sites: dict[str, list[str]] | None = None) -> dict:
    """Routers as Pangolin generates them for three resources (names shortened), per site: its host prefix and
    the additional middlewares its Traefik attaches (default: one site, the README's)."""
    def resource(name: str, host: str, additional: list[str], headers: dict[str, str] | None,
                 rewritten: bool) -> dict:
        # Pangolin's order: badger, the additional middlewares, the path rewrite, the resource's own headers.
        middlewares = (["badger", *additional] + ([f"{name}-rewrite"] if rewritten else [])
                       + ([f"{name}-headers"] if headers else []))
        return {"rule": f"Host(`{host}`)", "service": f"{name}-service", "middlewares": middlewares}

    http = {"routers": {}, "services": {}, "middlewares": {
        "badger": {"forwardAuth": {"address": f"http://127.0.0.1:{badger_port}/auth"}}}}
    for prefix, additional in (sites or {"": ADDITIONAL_MIDDLEWARES}).items():
        for i, host, headers in RESOURCES:
            name = f"{prefix}{i}"
            http["routers"][f"{name}-router"] = resource(name, prefix + host, additional, headers, i == REWRITTEN)
            http["services"][f"{name}-service"] = {
                "loadBalancer": {"servers": [{"url": f"http://127.0.0.1:{upstream_port}"}]}}
            if headers:
                http["middlewares"][f"{name}-headers"] = {"headers": {"customResponseHeaders": headers}}
            if i == REWRITTEN:  # the wiki is served under /wiki/ (the app knows nothing of it)
                http["middlewares"][f"{name}-rewrite"] = {
                    "replacePathRegex": {"regex": "^/wiki/(.*)", "replacement": "/$1"}}
    return {"http": http}


@pytest.fixture(scope="module")
def pangolin(built_modules, upstream):
    badger = Served(lambda path: (200, b"{}"))
    api = Served(lambda path: (200, json.dumps(pangolin_config(upstream.port, badger.port)).encode()))
    policy = json.dumps(middleware_options(example("pangolin-dynamic")))
    traefik = Traefik(policy, upstream.port, options_form="keys", companion_hosts=[], providers={
        "http": {"endpoint": f"http://127.0.0.1:{api.port}/api/v1/traefik-config", "pollInterval": "5s"}})
    try:
        with traefik:
            traefik.wait_for_router("photos.example.com")
            yield traefik, badger
    finally:
        api.close()
        badger.close()


def get(pangolin, host: str, path: str, **headers):
    traefik, _ = pangolin
    reply = request(traefik.ports["https"], path, https=True, host=host, headers=headers)
    assert reply.status in (200, 206), (host, path, reply.status)
    for name in ("x-powered-by", "server"):
        assert reply.one(name) is None, (host, path, name)
    assert reply.one("x-content-type-options") == "nosniff", (host, path)
    return reply


def test_every_resource_router_runs_badger_then_the_plugin(pangolin):
    traefik, badger = pangolin
    before = badger.requests
    get(pangolin, "photos.example.com", "/")
    assert badger.requests == before + 1, "the badger stand-in was asked first"
    log = traefik.log()
    assert "routerName=1-router@http" in log and "middlewareName=secure-headers@file" in log


def test_immich_gets_the_preset_and_keeps_pangolins_own_headers(pangolin):
    for headers in ({"Sec-Fetch-Dest": "document"}, {}, {"Accept": "*/*"}):
        page = get(pangolin, "photos.example.com", "/", **headers)
        assert "frame-ancestors 'self'" in page.one("content-security-policy")
        assert page.one("x-frame-options") == "SAMEORIGIN"
        assert page.one("strict-transport-security") == "max-age=31536000"
        assert page.one("cache-control") == "no-cache", "Pangolin's per-resource value: keep_upstream keeps it"
        assert page.one("x-pangolin-resource") == "immich"
    video = get(pangolin, "photos.example.com", "/api/assets/abc/video/playback", Range="bytes=0-99")
    assert video.status == 206 and video.one("x-frame-options") == "SAMEORIGIN"


def test_the_exception_keeps_its_own_csp_and_no_frame_options(pangolin):
    for path, headers in (("/", {"Sec-Fetch-Dest": "document"}), ("/auth/login", {}),
                          ("/api/server/ping", {}), ("/_app/immutable/app.js", {"Sec-Fetch-Dest": "script"})):
        reply = get(pangolin, "legacy.example.com", path, **headers)
        assert reply.one("content-security-policy") == LEGACY_CSP, path
        assert reply.one("x-frame-options") is None, path
        assert reply.one("strict-transport-security") == "max-age=31536000", path


def test_a_resource_no_rule_names_gets_the_last_rule(pangolin):
    # /wiki/ reaches the app only through the path rewrite (the app answers 404 to /wiki/).
    for path in ("/", "/wiki/"):
        page = get(pangolin, "wiki.example.com", path)
        assert page.one("content-security-policy") == "frame-ancestors 'self'", path
        assert page.one("strict-transport-security") == "max-age=86400", path
        assert page.one("referrer-policy") == "no-referrer", path


# One bad edit: the README's policy with one field Traefik's options cannot read as a number.
BAD_FIELD = "rules[2].hsts.max_age"
SITES = {"pass.": ["passing@file", "secure-headers-streamed@file"],
         "refuse.": ["refusing@file", "secure-headers-streamed@file"],
         "default.": ["defaulting@file", "secure-headers-streamed@file"],
         "typo.": ["typo@file", "secure-headers-streamed@file"]}


def bad_edit(on_invalid_policy: str | None) -> dict:
    options = middleware_options(example("pangolin-dynamic"))
    rules = [dict(rule) for rule in options["rules"]]
    rules[2]["hsts"] = {"max_age": "one year"}
    return {**options, "rules": rules, **({"on_invalid_policy": on_invalid_policy} if on_invalid_policy else {})}


@dataclass
class EditedTraefik(Traefik):
    """Traefik as the pangolin fixture runs it, plus the edited middlewares in Pangolin's dynamic_config.yml
    beside the companion generated before the edit (the edit is to the plugin's options only)."""

    edited: dict[str, dict] = field(default_factory=dict)

    def write_config(self):
        config = super().write_config()
        path = self.workdir / "dynamic" / "secure-headers.yml"
        dynamic = yaml.safe_load(path.read_text())
        for name, options in self.edited.items():
            dynamic["http"]["middlewares"][name] = {"plugin": {PLUGIN_KEY: options}}
        # Only the HTTP provider's resource routers use the edited middlewares; the file's own router stays the
        # good policy's (the harness waits for it to answer).
        path.write_text(yaml.safe_dump(dynamic))
        return config


@pytest.fixture(scope="module")
def edited(built_modules, upstream):
    badger = Served(lambda path: (200, b"{}"))
    api = Served(lambda path: (200, json.dumps(pangolin_config(upstream.port, badger.port, SITES)).encode()))
    good = json.dumps(middleware_options(example("pangolin-dynamic")))
    traefik = EditedTraefik(good, upstream.port, options_form="keys", companion_hosts=[], providers={
        "http": {"endpoint": f"http://127.0.0.1:{api.port}/api/v1/traefik-config", "pollInterval": "5s"}},
        edited={"passing": bad_edit("pass"), "refusing": bad_edit("refuse"), "defaulting": bad_edit(None),
                "typo": {**middleware_options(example("pangolin-dynamic")), "on_invalid_policy": "open"}})
    try:
        with traefik:
            traefik.wait_for_router("pass.photos.example.com")
            yield traefik
    finally:
        api.close()
        badger.close()


@pytest.mark.parametrize("site", ["refuse.", "default.", "typo."])
def test_a_bad_edit_under_refuse_takes_every_resource_down(edited, site):
    for _, host, _ in RESOURCES:
        reply = request(edited.ports["https"], "/", https=True, host=site + host)
        assert reply.status == 404, (site + host, reply.status)
    middleware = SITES[site][0]
    why = ("invalid policy at on_invalid_policy: must be `refuse` (the default) or `pass`" if site == "typo."
           else f"invalid policy at {BAD_FIELD}: ")
    assert any(f" ERR secure-headers: {why}" in line and f"middlewareName={middleware}" in line
               for line in edited.log().splitlines()), middleware


def test_a_bad_edit_under_pass_serves_every_resource_unchanged_and_says_so(edited):
    for _, host, own_headers in RESOURCES:
        reply = request(edited.ports["https"], "/", https=True, host="pass." + host,
                        headers={"Sec-Fetch-Dest": "document"})
        assert reply.status == 200, (host, reply.status)
        # Pangolin's per-resource headers pass, and the companion (generated before the edit) still writes its
        # static headers; what only the plugin writes is missing: the CSP it would set and its per-rule HSTS.
        for name, value in (own_headers or {}).items():
            assert reply.one(name) == value, (host, name)
        assert reply.one("x-content-type-options") == "nosniff", "from the companion"
        if host != "legacy.example.com":
            assert reply.one("content-security-policy") is None, (host, reply.one("content-security-policy"))
    log = edited.log()
    # Traefik builds the middleware per router and entry point: each logs an ERROR line naming the field (and each
    # further instance it creates for concurrent requests logs one more).
    errors = [line for line in log.splitlines() if "on_invalid_policy is pass: serving every request" in line]
    assert all(f" ERR secure-headers: invalid policy at {BAD_FIELD}: " in line for line in errors), errors
    for i, _, _ in RESOURCES:
        assert any(f"routerName=websecure-pass.{i}-router@http" in line for line in errors), (i, errors)
    notice = edited.wait_for_log("went out without the plugin's security headers since the last notice")
    assert " WRN secure-headers: on_invalid_policy is pass" in notice
