"""Browser test: `ns-viewer` on a tiny vvc-rate-aware run (and `ns-vvc play` on its file alone), in headless
Debian chromium, driven over the Chrome DevTools Protocol.

The frame slider is moved through the page (keyboard on the slider thumb, as a user would); the
test waits for each render to settle, compares screenshots of the 3D view at two frames, and reads
the read-out, the Time slider and the render resolution (the viewer's "Resolution" line) from the DOM:
the settled view of a frame reaches at least 256 px on its long side (the playback renderer and the
controls' settled resolution) within 2 s of the frame change (issue 28's target; more when the machine is busier than
chromium and the viewer make it; the time is from the key press to the moment the page set the image it then kept as
the view's texture, recorded in the page without screen grabs, and printed). `ns-vvc play`
shows playback controls only (no training buttons, no training step). Screenshots go to a temporary folder (kept in
`VVC_SCREENSHOT_DIR` when that is set). Needs chromium: `make browser-deps`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cdp import Browser, find_chromium, free_port
from PIL import Image

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        find_chromium() is None,
        reason="chromium is not installed (Debian: `make browser-deps` runs apt-get install -y chromium)",
    ),
]

BIN = Path(sys.executable).parent

# JS: the thumb of the slider labelled `name`, and the text input labelled `name`
_FIND = """
window.__vvcSlider = (name) => {
  for (const s of document.querySelectorAll('[role="slider"]')) {
    let p = s;
    for (let i = 0; i < 8 && p; i++) {
      p = p.parentElement;
      const l = p && p.querySelector('label');
      if (l) { if (l.textContent.trim() === name) return s; break; }
    }
  }
  return null;
};
window.__vvcText = (name) => {
  for (const l of document.querySelectorAll('label')) {
    if (l.textContent.trim() !== name) continue;
    let p = l;
    for (let i = 0; i < 6 && p; i++) {
      p = p.parentElement;
      const input = p && p.querySelector('input:not([type="hidden"]):not([type="checkbox"])');
      if (input) return input.value;
    }
  }
  return null;
};
true
"""


def _view(png: Path, panel_x: float = 0.58) -> np.ndarray:
    """The 3D view part of a screenshot (left of the control panel), as float RGB."""
    img = np.asarray(Image.open(png).convert("RGB"), dtype=np.float32)
    h, w, _ = img.shape
    return img[int(0.1 * h) : int(0.9 * h), int(0.05 * w) : int(panel_x * w)]


def _settled_shot(browser: Browser, path: Path, timeout: float = 120.0, poll: float = 1.5) -> np.ndarray:
    """Screenshot once the view stops changing (the last, full-resolution render has arrived)."""
    deadline = time.time() + timeout
    prev = None
    n = 0
    while time.time() < deadline:
        time.sleep(poll)
        browser.screenshot(path)
        cur = _view(path)
        if prev is not None and np.abs(cur - prev).mean() < 0.05:
            n += 1
            if n >= 2:
                return cur
        else:
            n = 0
        prev = cur
    raise TimeoutError(f"the view did not settle within {timeout} s ({path})")


_RESOLUTION = """(() => { const m = document.body.innerText.match(/Resolution: (\\d+)x(\\d+)px/);
  return m ? [parseInt(m[1]), parseInt(m[2])] : null; })()"""


def _wait_resolution(browser: Browser, min_long_side: int, timeout: float) -> tuple:
    """(seconds until the viewer's render resolution had a long side >= min_long_side, that resolution)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        res = browser.eval(_RESOLUTION)
        if res and max(res) >= min_long_side:
            return time.time() - t0, tuple(res)
        time.sleep(0.05)
    raise TimeoutError(f"render resolution stayed below {min_long_side} px for {timeout} s (last: {res})")


def _grab_view(browser: Browser) -> np.ndarray:
    """The 3D view part of the page (as `_view` crops a screenshot), as float RGB, from a quick JPEG grab."""
    import io

    w, h = browser.width, browser.height
    x0, y0 = int(0.05 * w), int(0.1 * h)
    jpg = browser.grab(x0, y0, int(0.58 * w) - x0, int(0.9 * h) - y0)
    return np.asarray(Image.open(io.BytesIO(jpg)).convert("RGB"), dtype=np.float32)


def _settle_time(browser: Browser, t_change: float, stable_s: float = 3.0, timeout: float = 60.0,
                 gap_s: float = 0.1) -> float:
    """Seconds from `t_change` until the view showed what it then kept showing for `stable_s` (the settled render of
    the new frame). Grabs the view every ~0.1 s + `gap_s` (chromium's software WebGL makes each grab cost CPU the
    viewer shares on a 2-core machine); a grab's time is when it returned (conservative, late by up to the gap)."""
    shots = []
    while time.time() - t_change < timeout:
        if shots:
            time.sleep(gap_s)
        img = _grab_view(browser)
        t = time.time() - t_change
        shots.append((t, img))
        first_of_run = t
        for s, im in reversed(shots):
            if np.abs(im - img).mean() >= 0.5:  # (JPEGs of the same pixels are identical)
                break
            first_of_run = s
        if t - first_of_run >= stable_s:
            return first_of_run
    raise TimeoutError(f"the view did not settle within {timeout} s of the frame change")


# JS run in the page before its own scripts (`_install_trace`): the times (page clock, ms) at which each image the
# viewer receives (the rendered view; viser hands it to three.js as a blob URL) was handed over and was decoded and
# set as the view's texture (viser revokes the URL in that callback), and the times keys went down. It only records:
# nothing is drawn or grabbed, so it does not take CPU from the viewer it times (screen grabs do, in software WebGL).
_TRACE = """
(() => {
  if (window.__vvcTrace) return;
  const T = window.__vvcTrace = {keys: [], images: []};
  const pending = new Map();
  const create = URL.createObjectURL.bind(URL), revoke = URL.revokeObjectURL.bind(URL);
  URL.createObjectURL = (obj) => {
    const url = create(obj);
    if (obj instanceof Blob && obj.type.startsWith('image/')) {
      const rec = {created: performance.now(), shown: null, bytes: obj.size, blob: obj};
      T.images.push(rec);
      pending.set(url, rec);
      for (const old of T.images.slice(0, -8)) old.blob = null;
    }
    return url;
  };
  URL.revokeObjectURL = (url) => {
    const rec = pending.get(url);
    if (rec) { rec.shown = performance.now(); pending.delete(url); }
    return revoke(url);
  };
  document.addEventListener('keydown', () => T.keys.push(performance.now()), true);
})();
"""

_TRACE_STATE = """(() => { const T = window.__vvcTrace; const k = T.keys[T.keys.length - 1];
  const after = T.images.filter(r => r.created > k);
  return {now: performance.now(), key: k, shown: after.filter(r => r.shown !== null).map(r => r.shown),
          waiting: after.some(r => r.shown === null && performance.now() - r.created < 10000)}; })()"""

_LAST_SHOWN_SIZE = """(async () => { const T = window.__vvcTrace; const k = T.keys[T.keys.length - 1];
  const s = T.images.filter(r => r.created > k && r.shown !== null && r.blob);
  if (!s.length) return null; const b = await createImageBitmap(s[s.length - 1].blob);
  return [b.width, b.height]; })()"""


def _install_trace(browser: Browser) -> None:
    """Record image arrivals and key presses in every page the browser opens from now on (`_TRACE`)."""
    browser.send("Page.enable")
    browser.send("Page.addScriptToEvaluateOnNewDocument", source=_TRACE)


def _shown_settle(browser: Browser, stable_s: float = 3.0, timeout: float = 60.0, poll_s: float = 0.25) -> tuple:
    """From the page's trace (`_install_trace` before navigating): (seconds from the last key press until the view's
    texture was set to the image it then kept for `stable_s`, that image's (width, height), images shown since the
    key). Polls a few numbers out of the page; takes no screenshots."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(poll_s)
        st = browser.eval(_TRACE_STATE)
        if st["key"] is None:
            raise RuntimeError("no key press recorded (was _install_trace called before navigating?)")
        if st["shown"] and not st["waiting"] and st["now"] - st["shown"][-1] >= 1000 * stable_s:
            size = browser.eval(_LAST_SHOWN_SIZE)
            return (st["shown"][-1] - st["key"]) / 1000, tuple(size) if size else None, len(st["shown"])
    raise TimeoutError(f"no image stayed on the view for {stable_s} s within {timeout} s of the key press")


def _step_frame_slider(browser: Browser, key: str, code: str, key_code: int) -> None:
    assert browser.eval(
        "(() => { const s = window.__vvcSlider('Frame'); if (!s) return false; "
        "s.scrollIntoView({block: 'center'}); s.focus(); return document.activeElement === s; })()"
    )
    browser.key(key, code, key_code)


@pytest.fixture(params=["ns-viewer", "ns-vvc play"])
def viewer_url(request, rate_aware_run: Path):
    """`ns-viewer --load-config <run>/config.yml`, or `ns-vvc play <run>/sequence.vvc` (the file alone)."""
    port = free_port()
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    log = open(rate_aware_run.parent / f"viewer-{port}.log", "w")
    if request.param == "ns-viewer":
        cmd = [
            str(BIN / "ns-viewer"),
            "--load-config",
            str(rate_aware_run / "config.yml"),
            "--viewer.websocket-port",
            str(port),
            "--viewer.websocket-host",
            "127.0.0.1",
        ]
    else:
        cmd = [
            str(BIN / "ns-vvc"),
            "play",
            str(rate_aware_run / "sequence.vvc"),
            "--websocket-port",
            str(port),
            "--websocket-host",
            "127.0.0.1",
        ]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    import urllib.request

    deadline = time.time() + 600  # nerfstudio imports take minutes on a busy 2-core machine
    url = f"http://127.0.0.1:{port}"
    while time.time() < deadline:
        if proc.poll() is not None:
            log.close()
            pytest.fail(
                f"ns-viewer exited ({proc.returncode}): "
                f"{(rate_aware_run.parent / f'viewer-{port}.log').read_text()[-2000:]}"
            )
        try:
            urllib.request.urlopen(url, timeout=2).read(10)
            break
        except OSError:
            time.sleep(1)
    else:
        proc.terminate()
        pytest.fail("ns-viewer did not serve its page within 600 s")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def test_viewer_steps_frames_in_a_real_browser(viewer_url: str, tmp_path: Path, request):
    prefix = "play_" if "play" in request.node.name else "viewer_"
    shots = tmp_path / "screenshots"
    shots.mkdir()
    browser = Browser(width=1280, height=1000)
    try:
        _install_trace(browser)
        browser.navigate(viewer_url)
        browser.wait_for("document.body && document.body.innerText.includes('Frame info')", timeout=120)
        browser.eval(_FIND)
        # frame 0 is shown, decoded from the file
        readout = browser.wait_for(
            "(() => { const v = window.__vvcText('Frame info'); return v && v.startsWith('0/') ? v : null; })()", 120
        )
        assert readout.startswith("0/2 · I · ") and "KB" in readout, readout
        status = browser.eval("window.__vvcText('Playback')")
        assert "sequence.vvc" in status and "vvc-rate-aware" in status, status
        if prefix == "play_":  # a file is only played: no training controls
            text = browser.eval("document.body.innerText")
            for word in ("Pause Training", "Resume Training", "Train Util", "Step:"):
                assert word not in text, word
        _wait_resolution(browser, 256, 120)
        f0 = _settled_shot(browser, shots / f"{prefix}frame0.png")
        _step_frame_slider(browser, "ArrowRight", "ArrowRight", 39)
        settle_s, shown_size, shown_images = _shown_settle(browser)
        load = os.getloadavg()[0]
        readout1 = browser.wait_for(
            "(() => { const v = window.__vvcText('Frame info'); return v && v.startsWith('1/') ? v : null; })()", 120
        )
        assert readout1.startswith("1/2 · P · ") and "ms" in readout1, readout1
        assert browser.eval("window.__vvcSlider('Frame').getAttribute('aria-valuenow')") == "1"
        # nerfstudio's Time slider follows the frame slider: frame 1 of 0..2 is t = 0.5
        browser.wait_for("window.__vvcSlider('Time').getAttribute('aria-valuenow') === '0.5'", 30)
        # the view settles at >= 256 px on its long side
        res_settled = browser.eval(_RESOLUTION)
        f1 = _settled_shot(browser, shots / f"{prefix}frame1.png")
        res_final = browser.eval(_RESOLUTION)

        _step_frame_slider(browser, "ArrowLeft", "ArrowLeft", 37)
        browser.wait_for(
            "(() => { const v = window.__vvcText('Frame info'); return v && v.startsWith('0/') ? v : null; })()", 120
        )
        f0_again = _settled_shot(browser, shots / f"{prefix}frame0_again.png")
    finally:
        browser.close()
        keep = os.environ.get("VVC_SCREENSHOT_DIR")
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            for p in shots.glob("*.png"):
                shutil.copy(p, Path(keep) / p.name)
    d01 = float(np.abs(f0 - f1).mean())
    d00 = float(np.abs(f0 - f0_again).mean())
    print(f"mean |frame0 - frame1| = {d01:.2f}, mean |frame0 - frame0 again| = {d00:.2f} (0..255)")
    print(f"frame 1: a {shown_size} px image set as the view {settle_s:.2f} s after the key ({shown_images} images "
          f"since); viewer resolution {res_settled} px, final {res_final} px")
    assert d01 > 1.0, f"frames 0 and 1 render alike (mean abs diff {d01:.3f})"
    assert shown_size and max(shown_size) >= 256, shown_size  # the settled image itself, as the browser decoded it
    assert res_final and max(res_final) >= 256, res_final
    # issue 28's target: 2 s on 2 cores, growing with the 1-minute load average above 3 (chromium and the viewer
    # server load 2 cores to ~3). Measured 0.63-1.45 s since the controls' own "Max res" changes stopped interrupting
    # renders (docs/evaluation.md); before that the spread reached 3 s and the test allowed 4 s
    budget = 2.0 * max(1.0, load / 3.0)
    assert settle_s <= budget, f"the view settled {settle_s:.2f} s after the frame change (budget {budget:.1f} s)"
    assert d00 < d01 / 4, f"frame 0 renders differently when shown again ({d00:.3f} vs {d01:.3f})"
