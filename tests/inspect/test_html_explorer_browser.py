"""The HTML explorer in a real browser: headless Chromium (Debian's ``chromium`` package) opens
the file from file://, a head is chosen and a token hovered through the DevTools protocol, and
the page must show what the trace says. A screenshot is kept as a test artifact.

Set-up: ``apt-get install -y chromium``. The test skips, saying so, where /usr/bin/chromium is
absent. The DevTools client below uses the standard library only (a minimal WebSocket).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

import attnlab
from attnlab.inspect.html import write_explorer
from attnlab.inspect.report import inspect_ids

CHROMIUM = Path("/usr/bin/chromium")
TOKENS = ["[CLS]", "<script>window.__pwned=1</script>", '<img src=x onerror="window.__pwned=2">',
          "cat", "sat", " on", "mat", "[SEP]"]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="headless Chromium is not installed (/usr/bin/chromium): `apt-get install -y chromium` "
           "to run the HTML explorer in a real browser",
)


class DevTools:
    """The Chrome DevTools protocol over a WebSocket (RFC 6455, client side, text frames only)."""

    def __init__(self, ws_url: str) -> None:
        rest = ws_url.split("://", 1)[1]
        hostport, path = rest.split("/", 1)
        host, port = hostport.split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        response = b""
        while b"\r\n\r\n" not in response:
            response += self.sock.recv(4096)
        assert response.split(b"\r\n")[0].split()[1] == b"101", response[:200]
        self.buffer = response.split(b"\r\n\r\n", 1)[1]
        self.next_id = 0

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("DevTools closed the connection")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def _send(self, text: str) -> None:
        payload = text.encode()
        header = bytearray([0x81])  # FIN + text frame
        n = len(payload)
        if n < 126:
            header.append(0x80 | n)
        elif n < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        self.sock.sendall(bytes(header) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _message(self) -> dict:
        parts = []
        while True:
            first, second = self._read(2)
            n = second & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            payload = self._read(n)
            if first & 0x0F in (0x9, 0xA):  # ping / pong: nothing to do for a short test
                continue
            parts.append(payload)
            if first & 0x80:
                return json.loads(b"".join(parts))

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self._send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = self._message()
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20.0):
        deadline = time.monotonic() + timeout
        guarded = f"(() => {{ try {{ return {expression}; }} catch (e) {{ return false; }} }})()"
        while time.monotonic() < deadline:
            value = self.evaluate(guarded)  # the document may not exist yet while it loads
            if value:
                return value
            time.sleep(0.05)
        raise TimeoutError(expression)

    def hover(self, selector: str) -> None:
        box = self.evaluate(f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
                            ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=box[0], y=box[1])


@pytest.fixture
def browser(tmp_path):
    profile = tempfile.mkdtemp(prefix="attnlab-chromium-")
    process = subprocess.Popen(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync", f"--user-data-dir={profile}",
         "--remote-debugging-port=0", "--window-size=1400,1900", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("chromium did not start its DevTools server")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy for localhost
        targets = json.loads(opener.open(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = next(t for t in targets if t["type"] == "page")
        tools = DevTools(page["webSocketDebuggerUrl"])
        tools.call("Page.enable")
        tools.call("Page.addScriptToEvaluateOnNewDocument", source=(
            "window.__errors = [];"
            " window.addEventListener('error', e => window.__errors.push(String(e.message)));"))
        tools.call("Emulation.setDeviceMetricsOverride", width=1400, height=1900, deviceScaleFactor=1,
                   mobile=False)
        yield tools
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(profile, ignore_errors=True)


def test_explorer_in_headless_chromium(browser, hf_bert, tmp_path):
    model = attnlab.load_pretrained(hf_bert[1])
    ids = [3, 14, 15, 9, 26, 5, 35, 4]
    found = inspect_ids(model, ids, TOKENS)
    path = write_explorer(found, tmp_path / "explorer.html", title="tiny BERT", text="a test")

    browser.call("Page.navigate", url=path.as_uri() + "#layer=1&head=2&token=3")
    browser.wait_for("document.documentElement.getAttribute('data-ready') === '1'")
    status = browser.evaluate("document.getElementById('status').textContent")
    assert "layer 1 \u00b7 head 2 \u00b7 query token 3 \u201ccat\u201d" in status  # the fragment chose it

    # Choose head 4 the way a user does: change the <select>.
    browser.evaluate("(() => { const s = document.getElementById('head'); s.value = '4';"
                     " s.dispatchEvent(new Event('change')); })()")
    assert "head 4" in browser.evaluate("document.getElementById('status').textContent")
    assert "head=4" in browser.evaluate("location.hash")

    # Hover query token 6 ("mat"): the page shows where it attends and what it receives.
    browser.hover('#queries .tok[data-i="6"]')
    browser.wait_for("document.getElementById('status').textContent.includes('query token 6')")
    probs = found.stacks[0].records[1].probs[0, 4, 6]  # layer 1, head 4, query 6
    best = int(probs.argmax())
    first_row = browser.evaluate("Array.from(document.querySelectorAll('#receives tbody tr')[0].cells)"
                                 ".map(c => c.textContent)")
    assert first_row[0] == TOKENS[best].replace(" ", "\u00b7")
    assert first_row[1] == f"{float(probs[best]):.3f}"
    rows = browser.evaluate("document.querySelectorAll('#receives tbody tr').length")
    assert rows == len(TOKENS)
    assert browser.evaluate("document.querySelectorAll('#map tbody tr').length") == len(TOKENS)
    pipeline = browser.evaluate("document.getElementById('pipeline').textContent")
    assert "The Q/K/V pipeline for \u201cmat\u201d (query 6), layer 1, head 4" in pipeline
    context = found.stacks[0].records[1].context[0, 4, 6, 0]
    shown_context = browser.evaluate("document.querySelector('#pipeline code.ctx').textContent")
    assert f"{float(context):.3f}" in shown_context

    # Token text is shown as text and never runs.
    shown = browser.evaluate("Array.from(document.querySelectorAll('#queries .tok')).map(t => t.textContent)")
    assert shown[1] == TOKENS[1] and shown[2] == TOKENS[2].replace(" ", "\u00b7")
    assert browser.evaluate("typeof window.__pwned") == "undefined"
    assert browser.evaluate("document.querySelectorAll('img').length") == 0
    assert browser.evaluate("window.__errors") == []

    # The value-weighted view and the rollout view work too.
    browser.evaluate("(() => { const s = document.getElementById('view'); s.value = 'rollout';"
                     " s.dispatchEvent(new Event('change')); })()")
    assert "attention rollout through all 3 layers" in browser.evaluate(
        "document.getElementById('map-title').textContent")
    browser.evaluate("(() => { const s = document.getElementById('view'); s.value = 'weighted';"
                     " s.dispatchEvent(new Event('change')); })()")
    assert "value-weighted" in browser.evaluate("document.getElementById('map-title').textContent")

    shot = browser.call("Page.captureScreenshot", format="png")
    artifact = tmp_path / "explorer.png"
    artifact.write_bytes(base64.b64decode(shot["data"]))
    keep = os.environ.get("ATTNLAB_TEST_ARTIFACTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(artifact, Path(keep) / "explorer.png")
    assert artifact.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The screenshot shows the map the page built: the pixel at the centre of every cell is the
    # colour the page gave that cell (8 x 8 cells, 18 px each, no text inside): a translucent blue
    # whose opacity grows with the value, over the panel's white.
    import matplotlib.image

    pixels = (matplotlib.image.imread(artifact)[..., :3] * 255).round().astype(int)  # (1900, 1400, 3)
    assert pixels.shape == (1900, 1400, 3)
    cells = browser.evaluate(
        "Array.from(document.querySelectorAll('#map tbody td')).map(td => { const r ="
        " td.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2,"
        " getComputedStyle(td).backgroundColor]; })")
    assert len(cells) == len(TOKENS) ** 2
    colours = {colour for _, _, colour in cells}
    assert len(colours) > 8  # the value-weighted view shades its cells differently
    for x, y, colour in cells:
        numbers = [float(c) for c in re.findall(r"[\d.]+", colour)]
        *rgb, alpha = numbers if len(numbers) == 4 else [*numbers, 1.0]  # "rgb(...)" where opaque
        expected = [alpha * c + (1 - alpha) * 255 for c in rgb]
        assert abs(pixels[int(y), int(x)] - expected).max() <= 2, (x, y, colour)
