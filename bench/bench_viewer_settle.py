#!/usr/bin/env python
"""Viewer settle time: `ns-vvc play FILE.vvc` in headless chromium, frame changes by keyboard, as a user would.

Usage (from the repo root; needs chromium: `make browser-deps`):
    .venv/bin/python bench/bench_viewer_settle.py FILE.vvc [--out bench_out/viewer_settle] [--changes 2]
        [--measure trace|grabs] [--browser-sched normal|idle] [--play-args --render-workers 1]

Steps the Frame slider `--changes` times from frame 0 (arrow key on the slider, as a user would) and, for each
change, reports the seconds until the view showed what it then kept for 3 s, the viewer's render resolution and the
1-minute load average; screenshots `frame<k>.png` of each settled frame go to `--out`. Two measures:
``trace`` (default; the browser test's) records in the page when each image the viewer receives was decoded and set
as the view's texture and when the key went down (`settle_s`, page clock; `shown_size`: the settled image's pixels;
`images`: every image received after the key, received / shown seconds after it, bytes, pixel size); ``grabs``
takes back-to-back JPEG grabs of the 3D view (each grab makes chromium composite the page in software WebGL: CPU
taken from the viewer it times on a 2-core machine; a grab's time is when it returned).
Headless chromium draws the viser page in software WebGL all the time (measured: ~2.7 cores' worth of threads, its
GPU process at nice -8, while the view shows a still frame), so on a 2-core machine the viewer it times gets a
fraction of the CPU: `--browser-sched idle` starts chromium under `chrt --idle 0` (it runs on what the viewer leaves,
as a browser drawing on its own GPU or machine would). Reuses the browser test's helpers (tests/playback/). Prints
JSON. Other jobs on the machine slow the viewer: say the load with the figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests" / "playback"))
import test_browser as tb  # noqa: E402
from cdp import Browser, free_port  # noqa: E402

# every image received since the last key press: (received, shown) seconds after the key, its JPEG bytes, its size
_TIMELINE = """(async () => { const T = window.__vvcTrace; const k = T.keys[T.keys.length - 1];
  const out = [];
  for (const r of T.images.filter(r => r.created > k)) {
    const b = r.blob ? await createImageBitmap(r.blob) : null;
    out.push({received_s: +((r.created - k) / 1000).toFixed(3),
              shown_s: r.shown === null ? null : +((r.shown - k) / 1000).toFixed(3),
              bytes: r.bytes, size: b ? [b.width, b.height] : null});
  }
  return out; })()"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file", type=Path)
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "bench_out" / "viewer_settle")
    ap.add_argument("--changes", type=int, default=2)
    ap.add_argument("--measure", choices=("trace", "grabs"), default="trace")
    ap.add_argument("--browser-sched", choices=("normal", "idle"), default="normal",
                    help="idle: chromium under `chrt --idle 0`: it runs on CPU the viewer leaves, as a browser drawing "
                         "on its own GPU or machine would (headless chromium draws the page in software all the time)")
    ap.add_argument("--play-args", nargs=argparse.REMAINDER, default=[],
                    help="extra `ns-vvc play` options, e.g. --threads 2 (last option)")
    a = ap.parse_args()
    if not a.file.is_file():
        raise SystemExit(f"{a.file}: no such file")
    a.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = open(a.out / "viewer.log", "w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "ns-vvc"), "play", str(a.file), "--websocket-port",
                             str(port), "--websocket-host", "127.0.0.1", *a.play_args], stdout=log,
                            stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        if proc.poll() is not None:  # ns-vvc play refused the file: its one-line reason, not a 10-minute wait
            log.close()
            lines = (a.out / "viewer.log").read_text().strip().splitlines()
            raise SystemExit(f"ns-vvc play exited ({proc.returncode}): {lines[-1] if lines else 'no output'}")
        try:
            urllib.request.urlopen(url, timeout=2).read(10)
            break
        except OSError:
            time.sleep(1)
    else:
        proc.terminate()
        raise SystemExit(f"ns-vvc play did not serve its page within 600 s (log: {a.out / 'viewer.log'})")
    browser = Browser(width=1280, height=1000, launcher=("chrt", "--idle", "0") if a.browser_sched == "idle" else ())
    changes = []
    try:
        tb._install_trace(browser)
        browser.navigate(url)
        browser.wait_for("document.body && document.body.innerText.includes('Frame info')", timeout=120)
        browser.eval(tb._FIND)
        browser.wait_for("(() => { const v = window.__vvcText('Frame info'); "
                         "return v && v.startsWith('0/') ? v : null; })()", 120)
        tb._wait_resolution(browser, 256, 120)
        tb._settled_shot(browser, a.out / "frame0.png")
        for k in range(1, a.changes + 1):
            tb._step_frame_slider(browser, "ArrowRight", "ArrowRight", 39)
            t = time.time()
            row = {"to_frame": k}
            if a.measure == "grabs":
                row["settle_s"] = round(tb._settle_time(browser, t), 2)
            else:
                try:
                    settle, size, n = tb._shown_settle(browser)
                    row.update(settle_s=round(settle, 3), shown_size=size, images_shown=n)
                except TimeoutError as exc:  # recorded with what the page received, and the run goes on
                    row.update(settle_s=None, error=str(exc))
                row["images"] = browser.eval(_TIMELINE)
            changes.append({**row, "resolution": browser.eval(tb._RESOLUTION),
                            "load1": round(os.getloadavg()[0], 2),
                            "readout": browser.eval("window.__vvcText('Frame info')")})
            if row["settle_s"] is not None:
                tb._settled_shot(browser, a.out / f"frame{k}.png")
    finally:
        browser.close()
        proc.terminate()
    print(json.dumps({"file": str(a.file), "window": [1280, 1000], "measure": a.measure,
                      "browser_sched": a.browser_sched, "play_args": a.play_args,
                      "changes": changes}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
