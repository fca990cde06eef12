"""The README's three ways to give Traefik the policy, loaded into real Traefik: YAML keys under the middleware,
the `policy: |` JSON string, and Docker labels. Docker cannot run here, so the labels go through Traefik's Redis
provider (Debian's redis-server), whose flat key paths Traefik decodes like labels: each label key is converted
mechanically. All three give the same headers; a bad value is refused with its field path in each."""

from __future__ import annotations

import json
import re

import pytest
from readme_examples import example, middleware_options
from secure_headers_harness.http_client import request
from secure_headers_harness.traefik import (COMPANION, RedisKV, Traefik, committed_dynamic, committed_policy,
                                           companion_middleware, immich_router_hosts, label_to_kv_key)

HOST = "photos.example.com"
MIDDLEWARE_LABEL = "traefik.http.middlewares."
# What each form is asked for: pages and scripts as a browser and as curl, the API, the favicon.
PROBES = [("/", {"Sec-Fetch-Dest": "document"}), ("/", {}), ("/auth/login", {"Accept": "*/*"}),
          ("/_app/immutable/app.js", {"Sec-Fetch-Dest": "script"}), ("/api/server/ping", {}),
          ("/favicon.ico", {}), ("/", {"X-Upstream-Helmet": "on"})]


def yaml_keys() -> dict:
    return middleware_options(example("traefik-yaml-keys"))


def middleware_labels() -> dict[str, str]:
    """The labels example's middleware labels, as KV keys (router labels belong to Docker's provider)."""
    labels = example("traefik-labels")["services"]["immich-server"]["labels"]
    pairs = dict(label.split("=", 1) for label in labels)
    return {label_to_kv_key(k): v for k, v in pairs.items() if k.startswith(MIDDLEWARE_LABEL)}


def responses(traefik: Traefik) -> list[list[tuple[str, bytes]]]:
    out = []
    for path, headers in PROBES:
        reply = request(traefik.ports["https"], path, https=True, host=HOST, headers=headers)
        assert reply.status == 200, (path, headers, reply.status)
        out.append(sorted((n.lower(), v) for n, v in reply.headers if n.lower() != "date"))
    return out


@pytest.fixture(scope="module")
def by_form(built_modules, upstream):
    """The same probes through Traefik with each form of the README's policy."""
    results = {}
    with Traefik('{"presets": ["immich"]}', upstream.port,
                 extra_routers={HOST: json.dumps(yaml_keys())}) as traefik:
        results["json string"] = responses(traefik)
    with Traefik('{"presets": ["immich"]}', upstream.port, extra_routers={HOST: yaml_keys()}) as traefik:
        results["yaml keys"] = responses(traefik)
    with RedisKV() as kv:
        for key, value in middleware_labels().items():
            kv.command("SET", key, value)
        kv.command("SET", "traefik/http/middlewares/bad-labels/plugin/secureheaders/rules/0/hsts/max_age", "abc")
        # The whole policy in one label, as the README offers for what labels cannot write.
        kv.command("SET", "traefik/http/middlewares/one-label/plugin/secureheaders/policy", json.dumps(yaml_keys()))
        traefik = Traefik('{"presets": ["immich"]}', upstream.port, providers=kv.provider(),
                          extra_routers={HOST: ["secure-headers@redis"], "bad.example.com": ["bad-labels@redis"]})
        with traefik:
            traefik.wait_for_router(HOST)
            results["labels"] = responses(traefik)
            bad = request(traefik.ports["http"], "/", host="bad.example.com")
            results["bad labels"] = (bad.status, traefik.wait_for_log("middlewareName=bad-labels@redis"))
        with Traefik('{"presets": ["immich"]}', upstream.port, providers=kv.provider(),
                     extra_routers={HOST: ["one-label@redis"]}) as traefik:
            traefik.wait_for_router(HOST)
            results["one label"] = responses(traefik)
    return results


def test_the_three_forms_give_the_same_headers(by_form):
    assert by_form["yaml keys"] == by_form["json string"]
    assert by_form["labels"] == by_form["json string"]
    assert by_form["one label"] == by_form["json string"]
    page = dict(by_form["json string"][0])
    assert b"frame-ancestors 'self'" in page["content-security-policy"]
    assert page["strict-transport-security"] == b"max-age=31536000"
    assert b"camera=()" in page["permissions-policy"]
    assert "x-powered-by" not in page and "server" not in page


def test_a_bad_label_is_refused_with_its_field_path(by_form):
    status, log = by_form["bad labels"]
    assert status == 404
    line = next(line for line in log.splitlines() if "middlewareName=bad-labels@redis" in line)
    assert re.search(r"secure-headers: invalid policy at rules\[0\]\.hsts\.max_age: .*abc", line), line


def test_the_committed_companion_is_the_one_the_cli_generates():
    """dynamic.yml carries the companion for policies/immich.json; regenerating it must not change it."""
    committed = committed_dynamic()["http"]["middlewares"][COMPANION]
    assert committed == companion_middleware(committed_policy(), immich_router_hosts())
    assert committed_dynamic()["http"]["routers"]["immich"]["middlewares"] == ["secure-headers", COMPANION]


def test_the_plugin_says_at_load_time_what_streamed_responses_cannot_get(proxy_for):
    log = proxy_for("traefik", '{"presets": ["immich"]}').server.log()
    line = next(line for line in log.splitlines() if "secure-headers: streamed responses" in line)
    assert "to remove x-powered-by, server, x-envoy-upstream-service-time" in line
    assert "`secure-headers traefik-middleware POLICY`" in line
    assert "never on a streamed response: cache-control, content-type, content-security-policy" in line
