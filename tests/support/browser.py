"""Headless Chromium driven over the DevTools protocol (aiohttp's websocket client; no extra package).

``--dump-dom``/``--screenshot`` fire at a fixed (virtual) time, too early or too late for pages that
render charts after loading code and data (MLflow's UI, Vega): here a page is opened, a JavaScript
condition is polled until it holds (or a timeout fails the test with what the page showed), then a
JavaScript probe is evaluated and a screenshot taken.
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


@dataclass
class PageResult:
    ready: bool  # the wait condition held before the timeout
    probe: Any  # what the probe expression returned (JSON-able)
    screenshot: Path
    seconds: float


class _CDP:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        my_id = self.next_id
        await self.ws.send_json({"id": my_id, "method": method, "params": params})
        while True:
            msg = await self.ws.receive_json()
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"DevTools {method}: {msg['error']}")
                return msg.get("result", {})

    async def evaluate(self, expression: str) -> Any:
        res = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"page script failed: {res['exceptionDetails'].get('text')}: {expression[:200]}")
        return res.get("result", {}).get("value")


async def _open(port: int, url: str, wait_js: str, probe_js: str, shot: Path, width: int, height: int,
                timeout_s: float, setup_js: str | None) -> tuple[bool, Any]:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/json/list") as r:
            targets = await r.json()
        page = next(t for t in targets if t.get("type") == "page")
        async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            cdp = _CDP(ws)
            await cdp.call("Page.enable")
            await cdp.call("Runtime.enable")
            await cdp.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                           mobile=False)
            if setup_js:  # runs before the page's own scripts (e.g. to seed localStorage)
                await cdp.call("Page.addScriptToEvaluateOnNewDocument", source=setup_js)
            await cdp.call("Page.navigate", url=url)
            deadline = time.monotonic() + timeout_s
            ready = False
            while time.monotonic() < deadline:
                try:
                    if await cdp.evaluate(wait_js):
                        ready = True
                        break
                except RuntimeError:
                    pass  # the page is still loading (no document yet)
                await asyncio.sleep(0.5)
            if ready:
                await asyncio.sleep(1.0)  # let animations (Vega transitions, plotly) settle for the picture
            probe = await cdp.evaluate(probe_js)
            data = await cdp.call("Page.captureScreenshot", format="png")
            shot.write_bytes(base64.b64decode(data["data"]))
            return ready, probe


def open_page(chromium: str, url: str, wait_js: str, probe_js: str, shot: Path, work: Path, width: int = 1400,
              height: int = 1000, timeout_s: float = 120.0, setup_js: str | None = None,
              extra_flags: tuple[str, ...] = ()) -> PageResult:
    """Open ``url`` in a fresh headless Chromium (its own profile under ``work``), wait for ``wait_js``
    to be truthy, return ``probe_js``'s value and a PNG screenshot. The browser is always stopped."""
    user_data = work / f"chromium-profile-{shot.stem}"
    user_data.mkdir(parents=True, exist_ok=True)
    port_file = user_data / "DevToolsActivePort"
    port_file.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--hide-scrollbars", "--remote-debugging-port=0",
         "--remote-allow-origins=*", f"--user-data-dir={user_data}", *extra_flags, "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    t0 = time.monotonic()
    try:
        while not port_file.exists() or not port_file.read_text().strip():
            if proc.poll() is not None:
                raise AssertionError(f"chromium exited (rc {proc.returncode}): {proc.stderr.read()[-2000:]!r}")
            if time.monotonic() - t0 > 60:
                raise AssertionError("chromium did not open its DevTools port within 60 s")
            time.sleep(0.2)
        port = int(port_file.read_text().split()[0])
        ready, probe = asyncio.run(_open(port, url, wait_js, probe_js, shot, width, height, timeout_s, setup_js))
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{shot}: no PNG screenshot written"
    return PageResult(ready=ready, probe=probe, screenshot=shot, seconds=time.monotonic() - t0)


def keep_screenshots(shots: list[Path], prefix: str) -> list[Path]:
    """Copy screenshots to reports/screenshots/ (git-ignored via reports/) so a person can look at them."""
    dest = Path(__file__).resolve().parents[2] / "reports" / "screenshots"
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for s in shots:
        target = dest / f"{prefix}-{s.name}"
        shutil.copyfile(s, target)
        out.append(target)
    return out


def json_probe(expr: str) -> str:
    """A probe expression returning JSON-able data (wrapped so a thrown error becomes a value)."""
    return f"(() => {{ try {{ return {expr}; }} catch (e) {{ return {{error: String(e)}}; }} }})()"


__all__ = ["PageResult", "find_chromium", "json_probe", "keep_screenshots", "open_page", "json"]
