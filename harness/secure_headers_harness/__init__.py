"""The test topology of secure-headers, shared by envoy-test, traefik-test, tests/e2e and bench.

    paths          where the repository's files and builds are, and fresh work folders under .work/
    processes      free ports, venv binaries, resident memory, and ProxyProcess (a proxy's lifecycle)
    envoy          real Envoy: the one launcher, the envoy-test topology, RemoteModule
    traefik        real Traefik: the one launcher, the traefik-test topology, the companion, RedisKV
    upstream       the Immich-like upstream (a server of its own: python -m secure_headers_harness.upstream)
    browser_pages  the pages the upstream serves under /browser/ for the headless-browser tests
    http_client    an HTTP/1.1 client that keeps header values as the exact bytes on the wire
    demo           `make demo` and `make demo-traefik`
"""
