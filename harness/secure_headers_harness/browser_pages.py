"""Pages for the headless-browser tests (tests/e2e/test_in_browser.py), served by upstream.py under /browser/.

Each page records what worked in `window.results`, which the tests read; nothing here depends on the proxy."""

from __future__ import annotations

import base64
import html
import json

try:
    from .paths import INLINE_SCRIPT_TABLE
except ImportError:  # a lone script (see upstream.py): outside the repository, without the table's pages
    INLINE_SCRIPT_TABLE = None

# A 1x1 PNG and a 0.1 s silent 8 kHz WAV: the smallest real image and audio a browser decodes.
PNG = base64.b64encode(base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")).decode()
WAV = base64.b64encode(
    b"RIFF" + (36 + 800).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
    + (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + (8000).to_bytes(4, "little")
    + (8000).to_bytes(4, "little") + (1).to_bytes(2, "little") + (8).to_bytes(2, "little")
    + b"data" + (800).to_bytes(4, "little") + bytes([128]) * 800).decode()

FRAMED = """<!doctype html><title>framed</title><p>framed page</p>
<script>parent.postMessage('framed-rendered', '*');</script>"""

EMBED = """<!doctype html><title>embed</title>
<script>window.results = {framed: false};
addEventListener('message', e => { if (e.data === 'framed-rendered') window.results.framed = true; });</script>
<iframe src="%s"></iframe>"""

NOSNIFF = """<!doctype html><title>nosniff</title>
<script>window.results = {plainRan: false};</script>
<script src="/browser/plain.js"></script>"""

PLAIN_JS = "window.results.plainRan = true;\n"

# Shaped like Immich's web client: a theme script and a bootstrap script inline, inline styles, WebAssembly, a
# blob: worker, blob: media, the Socket.IO WebSocket and a fetch to the map tile server (a second origin).
IMMICH_LIKE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Immich-like</title>
<style>body { font-family: sans-serif; }</style>
<script>document.documentElement.dataset.theme = 'dark'; window.results = {theme: true};</script>
</head><body><div id="app" style="color: #333">loading</div>
<script>
(() => {
  const done = (name) => { window.results[name] = true; };
  const fail = (name, e) => { window.results[name] = 'failed: ' + e; };
  const bytes = (b64) => Uint8Array.from(atob(b64), c => c.charCodeAt(0));
  done('bootstrap');
  // The smallest valid module: needs 'wasm-unsafe-eval'.
  WebAssembly.instantiate(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0])).then(() => done('wasm'), e => fail('wasm', e));
  try {
    const worker = new Worker(URL.createObjectURL(new Blob(['postMessage(42)'], {type: 'text/javascript'})));
    worker.onmessage = () => done('worker');
    worker.onerror = (e) => fail('worker', e.message);
  } catch (e) { fail('worker', e); }
  const img = new Image();
  img.onload = () => done('blobImage');
  img.onerror = () => fail('blobImage', 'error');
  img.src = URL.createObjectURL(new Blob([bytes('%(png)s')], {type: 'image/png'}));
  const audio = document.createElement('audio');
  audio.onloadedmetadata = () => done('blobMedia');
  audio.onerror = () => fail('blobMedia', 'error');
  audio.src = URL.createObjectURL(new Blob([bytes('%(wav)s')], {type: 'audio/wav'}));
  const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host
                           + '/api/socket.io/?EIO=4&transport=websocket');
  ws.onopen = () => ws.send('2probe');
  ws.onmessage = (e) => { if (e.data === '2probe') done('websocket'); ws.close(); };
  ws.onerror = () => fail('websocket', 'error');
  fetch(%(tiles)s + '/browser/tile.json').then(r => r.json()).then(j => j.tile && done('tiles'), e => fail('tiles', e));
  document.getElementById('app').textContent = 'ready';
})();
</script></body></html>"""

# For inline_script_hashes: two inline scripts that must run (the first one's text changes with ?v=), a script the
# page builds at run time with inline text, and an event-handler attribute; the last two must be blocked.
HASHED = """<!doctype html>
<html><head><meta charset="utf-8"><title>hashed</title>
<script>window.results = {theme: '%(version)s'};</script>
</head><body><button id="handler" onclick="window.results.onclick = true">click</button>
<script>
  window.results.bootstrap = true;
  const injected = document.createElement('script');
  injected.textContent = 'window.results.injected = true;';
  document.head.appendChild(injected);
</script></body></html>"""

MANY_SCRIPTS = """<!doctype html><title>many</title>
<script>window.results = {one: true};</script><script>window.results.two = true;</script>
<script>window.results.three = true;</script>"""

# For inline_script_hashes.strict_dynamic, shaped like SvelteKit's output for Immich: the entry module preloaded
# (?preload=0 drops the link), a theme script and a bootstrap that import()s the entry; the entry imports a chunk,
# loads a route with import() and inserts a Cast-like sender from a second origin (other.test) with createElement,
# which inserts its framework the same way. ?parser=1 adds a <script src> from that origin in the markup.
STRICT_APP = """<!doctype html>
<html><head><meta charset="utf-8"><title>strict-dynamic</title>
%(preload)s<script>window.results = {theme: true};</script>
</head><body><div id="app">loading</div>%(parser)s
<script>
  window.results.bootstrap = true;
  import('/browser/strict/start.js').then(kit => kit.start('http://other.test'),
                                           e => { window.results.start = 'failed: ' + e; });
</script></body></html>"""
STRICT_PRELOAD = '<link rel="modulepreload" href="/browser/strict/start.js">\n'
STRICT_PARSER = '<script src="http://other.test/browser/strict/parser.js"></script>'
# A document without inline scripts: under 'strict-dynamic' alone its own script could not run.
STRICT_PLAIN = """<!doctype html><meta charset="utf-8"><title>no inline script</title>
<script src="/browser/strict/plain.js"></script>"""
STRICT_SCRIPTS = {
    "start.js": """import {chunk} from '/browser/strict/chunk.js';
export function start(castOrigin) {
  window.results.start = true;
  window.results.chunk = chunk;
  import('/browser/strict/route.js').then(m => { window.results.route = m.route; },
                                          e => { window.results.route = 'failed: ' + e; });
  const cast = document.createElement('script');
  cast.src = castOrigin + '/browser/strict/cast.js';
  cast.onerror = () => { window.results.cast = 'failed'; };
  document.head.appendChild(cast);
  document.getElementById('app').textContent = 'ready';
}
""",
    "chunk.js": "export const chunk = true;\n",
    "route.js": "export const route = true;\n",
    "cast.js": """window.results.cast = true;
const framework = document.createElement('script');
framework.src = document.currentScript.src.replace('cast.js', 'cast-framework.js');
document.head.appendChild(framework);
""",
    "cast-framework.js": "window.results.castFramework = true;\n",
    "parser.js": "window.results.parser = true;\n",
    "plain.js": "window.results = {plain: true};\n",
}
STRICT_STEPS = ["theme", "bootstrap", "start", "chunk", "route", "cast", "castFramework"]

# The inline-script table (tests/inline_script_table.json): each document as its bytes and Content-Type, for the
# browser table test.
SCRIPT_TABLE = {case["name"]: (case["html"].encode("latin-1"), case.get("content_type", "text/html; charset=utf-8"))
                for case in json.loads(INLINE_SCRIPT_TABLE.read_text())} if INLINE_SCRIPT_TABLE else {}
# A document whose encoding only a <meta> declares (served without a charset): ?label= picks the label.
META_CHARSET = "<!doctype html><meta charset=%s><title>meta</title><script>ran('meta')</script>"

STEPS = ["theme", "bootstrap", "wasm", "worker", "blobImage", "blobMedia", "websocket", "tiles"]


def page(path: str, query: dict[str, list[str]]) -> tuple[int, bytes, str, list[tuple[str, str]]] | None:
    """(status, body, content type, extra headers) for a /browser/ path, or None for any other path."""
    if path == "/browser/framed":
        return 200, FRAMED.encode(), "text/html; charset=utf-8", []
    if path == "/browser/embed":
        target = query.get("src", ["/browser/framed"])[0]
        return 200, (EMBED % html.escape(target, quote=True)).encode(), "text/html; charset=utf-8", []
    if path == "/browser/nosniff":
        return 200, NOSNIFF.encode(), "text/html; charset=utf-8", []
    if path == "/browser/plain.js":
        return 200, PLAIN_JS.encode(), "text/plain; charset=utf-8", []
    if path == "/browser/immich":
        tiles = json.dumps(query.get("tiles", [""])[0])
        body = IMMICH_LIKE % {"png": PNG, "wav": WAV, "tiles": tiles}
        return 200, body.encode(), "text/html; charset=utf-8", [("Cache-Control", "no-store")]
    if path in ("/browser/hashed", "/browser/drop-first"):
        version = "".join(c for c in query.get("v", ["1"])[0] if c.isalnum())[:32]
        return 200, (HASHED % {"version": version}).encode(), "text/html; charset=utf-8", [("ETag", f'"{version}"')]
    if path.startswith("/browser/table/") and path.removeprefix("/browser/table/") in SCRIPT_TABLE:
        body, content_type = SCRIPT_TABLE[path.removeprefix("/browser/table/")]
        return 200, body, content_type, []
    if path == "/browser/meta-charset":
        label = "".join(c for c in query.get("label", ["utf-8"])[0] if c.isalnum() or c == "-")[:32]
        return 200, (META_CHARSET % label).encode(), "text/html", []
    if path == "/browser/strict-app":
        body = STRICT_APP % {"preload": STRICT_PRELOAD if query.get("preload", ["1"])[0] == "1" else "",
                             "parser": STRICT_PARSER if query.get("parser", ["0"])[0] == "1" else ""}
        return 200, body.encode(), "text/html; charset=utf-8", []
    if path == "/browser/strict-plain":
        return 200, STRICT_PLAIN.encode(), "text/html; charset=utf-8", []
    if path.startswith("/browser/strict/") and path.removeprefix("/browser/strict/") in STRICT_SCRIPTS:
        return 200, STRICT_SCRIPTS[path.removeprefix("/browser/strict/")].encode(), "text/javascript; charset=utf-8", []
    if path == "/browser/many-scripts":
        return 200, MANY_SCRIPTS.encode(), "text/html; charset=utf-8", []
    if path == "/browser/tile.json":
        return 200, b'{"tile": true}', "application/json", [("Access-Control-Allow-Origin", "*")]
    return None
