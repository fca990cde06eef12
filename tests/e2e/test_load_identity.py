"""Each host logs the build's version and the SHA-256 of the policy text when the policy loads, so an operator
can tell from the log exactly which release runs which policy (the same text gives the same digest in both)."""

import hashlib
import re

from secure_headers_harness import paths

VERSION = paths.VERSION
POLICY = '{"rules": [{"name": "immich", "match": {"hosts": ["immich.test"]}, "presets": ["immich"]}]}'


def test_host_logs_version_and_policy_digest(proxy_for, host):
    proxy = proxy_for(host, POLICY)
    digest = hashlib.sha256(POLICY.encode()).hexdigest()
    lines = [line for line in proxy.server.log().splitlines() if "secure-headers: policy loaded" in line]
    assert lines, proxy.server.log()[-3000:]
    expected = re.compile(rf"policy loaded \(1 rule\(s\)(, [\d.]+ ms)?\), version {re.escape(VERSION)}, "
                          rf"policy sha256:{digest}\b")
    assert all(expected.search(line) for line in lines), lines
