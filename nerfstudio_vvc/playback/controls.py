"""Video-player controls for the nerfstudio viewer, built from nerfstudio viewer elements.

`PlaybackControls` is an `nn.Module` without parameters: as an attribute of a model, nerfstudio's
viewer finds its viewer elements (`parse_object`) and adds them to the control panel, under
"Custom Elements / playback":

    Frame        integer slider over every frame (nerfstudio's Time slider has 101 positions)
    Play / Pause plays at the sequence's fps; frames are dropped when decoding cannot keep up
    Loop         restart at the first frame
    Frame info   frame number, I/P, the frame's bytes in the file, decode time
    Playback     what is playing, or why nothing is (e.g. the run has no bitstream)

Decoding happens in one background thread (never in a GUI callback), so the UI never stalls.
The Time slider and the frame slider follow each other (time = frame / (N - 1)).

The controls do not know the method: a provider (the model) answers `playback_prepare(frame)`
with (read-out line, status line), decoding the frame if needed.

Settled resolution: nerfstudio's viewer renders a still view at its "Max res" (after a low-resolution
preview sized from the measured render rate). The model reports the time of every viewer render
(`note_render`), and the controls keep "Max res" at the largest long side whose render fits
`settle_budget_s` (at least `min_settled_res`), so a frame change settles at a usable size on a CPU
and at full size on a GPU. Moving the "Max res" slider by hand turns this off.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from typing import Any, Callable, Deque, List, Optional, Protocol, Tuple

import torch
from nerfstudio.viewer.viewer_elements import ViewerButton, ViewerCheckbox, ViewerControl, ViewerSlider, ViewerText
from torch import nn

View = Tuple[Tuple[float, ...], Tuple[float, ...], Tuple[float, ...]]


def default_view(aabb: torch.Tensor) -> View:
    """(eye, target, up) in scene units: outside the scene box, looking at its centre, z up."""
    aabb = aabb.detach().float().cpu()
    center = (aabb[0] + aabb[1]) / 2
    half_diag = float((aabb[1] - aabb[0]).norm()) / 2
    direction = torch.tensor([1.0, -1.0, 0.35])
    eye = center + direction / direction.norm() * 1.25 * half_diag
    return tuple(eye.tolist()), tuple(center.tolist()), (0.0, 0.0, 1.0)


class PlaybackProvider(Protocol):
    def playback_prepare(self, frame: int) -> Tuple[str, str]:
        """Make `frame` ready to render (decode it); return (read-out line, status line)."""
        ...


class _ViewerHook(ViewerControl):
    """Gives the controls the viewer (for the Time slider) once nerfstudio's Viewer is built."""

    def __init__(self, on_setup: Callable[[Any], None]) -> None:
        self._on_setup = on_setup

    def _setup(self, viewer: Any) -> None:
        super()._setup(viewer)
        self._on_setup(viewer)


class PlaybackControls(nn.Module):
    """Frame slider, Play/Pause, Loop and read-outs; decodes in a background thread."""

    def __init__(self, num_frames: int, fps: float, provider: Optional[PlaybackProvider] = None,
                 initial_view: Optional[View] = None) -> None:
        super().__init__()
        self.initial_view = initial_view
        """(eye, target, up) in scene units set on each browser that connects (None: viser's default)."""
        self.num_frames = max(int(num_frames), 1)
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.__dict__["_provider"] = provider  # not a submodule: the provider is usually the model itself
        last = self.num_frames - 1
        self.frame_slider = ViewerSlider("Frame", 0, 0, max(last, 1), 1, cb_hook=self._on_frame_slider,
                                         hint=f"Frame to show (0..{last}); seeking decodes from the GOP's I-frame")
        self.play_button = ViewerButton("Play", cb_hook=lambda _: self.play())
        self.pause_button = ViewerButton("Pause", cb_hook=lambda _: self.pause(), visible=False)
        self.playback_loop = ViewerCheckbox("Loop", True, hint="Restart at the first frame after the last")
        self.readout_frame = ViewerText(
            "Frame info",
            "",
            disabled=True,
            hint="frame/last · I or P · the frame's bytes in the file · its decode time",
        )
        self.readout_status = ViewerText("Playback", "", disabled=True, hint="What is playing")
        self.viewer_hook = _ViewerHook(self._attach_viewer)
        self._viewer: Any = None
        self._frame = 0
        self._playing = False
        self._play_t0 = 0.0
        self._play_first = 0
        self.dropped_frames = 0
        self.shown_frames = 0
        self._request: Optional[int] = None
        self._cond: Optional[threading.Condition] = None  # created when the worker starts (modules get copied)
        self._worker: Optional[threading.Thread] = None
        self.readout = ""
        self.status = ""
        self.prefetch = True
        """After a frame change (not while playing), decode the next frame in the background: stepping forward then
        renders at once (a P-frame decode is 0.2-0.4 s of a frame change on 2 CPU cores)."""
        self.prefetch_idle_s = 0.3
        """The prefetch waits until the viewer has rendered the new frame and then nothing for this long (it would slow
        the view down: started before that render or between two of its chunks, it decoded alongside it). The models
        report each chunk's start and end (`note_render_start`, `note_render`)."""
        self.prefetch_render_wait_s = 5.0
        """...or, when no render comes after a frame change (no browser), this long."""
        self._pending_since = -1e9
        self._request_at = -1e9
        self._render_started = -1e9
        self.prefetched: List[int] = []
        """Frames the worker decoded ahead (newest last; for tests and the bench)."""
        self._pending_prefetch: Optional[int] = None
        self._last_render_end = -1e9
        self.idle_refresh_s = 2.0
        """When idle, the current frame's read-outs are refreshed this often."""
        self.auto_max_res = True
        """Keep the viewer's "Max res" at what renders within `settle_budget_s` (off once a user moves it)."""
        self.settle_budget_s = 0.9
        """Render time allowed for the settled (full-resolution) view after a frame change."""
        self.shrink_over_budget = 1.25
        """The settled view shrinks at once when a square view of its side would render in more than this times
        `settle_budget_s` at the measured rate (it grows only by > 20 % and at most every 3 s)."""
        self.min_settled_res = 256
        self.max_settled_res = 1024
        self.rays_per_s: Optional[float] = None
        """Measured viewer render rate: rays / seconds over the last `rate_window_s` seconds of render calls."""
        self.rate_window_s = 3.0
        self._recent: Deque[Tuple[int, float]] = collections.deque()
        self._auto_res: Optional[int] = None
        self._auto_res_at = -1e9
        self._auto_res_from = 0
        self.restart_over_pixels = 2.0
        """When "Max res" shrinks by itself, a view in progress is rendered again at the new size only if it has more
        than this times the new size's pixels; otherwise it finishes (no preview, no work thrown away)."""

    # ------------------------------------------------------------------ state
    @property
    def frame(self) -> int:
        return self._frame

    @property
    def playing(self) -> bool:
        return self._playing

    @property
    def viewer_attached(self) -> bool:
        """True once a nerfstudio viewer shows these controls (its model then renders with the playback renderer)."""
        return self._viewer is not None

    # ------------------------------------------------------------------ settled resolution
    def note_render_start(self) -> None:
        """The model starts rendering a chunk of a view (the render thread; `note_render` follows when it is done)."""
        self._render_started = time.monotonic()

    def _view_idle_for(self, now: float) -> float:
        """Seconds since the viewer last finished rendering; 0 while a render is under way (one that started over 10 s
        ago without finishing counts as over: an interrupted render reports nothing)."""
        if self._render_started > self._last_render_end and now - self._render_started < 10.0:
            return 0.0
        return now - self._last_render_end

    def note_render(self, rays: int, seconds: float) -> None:
        """The model rendered `rays` rays for the viewer in `seconds` (called from the render thread, once per chunk
        of a view). The rate is total rays over total time of the last `rate_window_s` seconds of rendering: chunks
        of empty space render hundreds of times faster than chunks through the scene, so a mean of per-chunk rates
        would be dominated by them and size the settled view for a render many times slower than the budget."""
        self._last_render_end = time.monotonic()
        if rays < 1024 or seconds <= 0:  # (a preview's few rays measure per-call overhead, not the rate)
            return
        self._recent.append((rays, seconds))
        total_s = sum(s for _, s in self._recent)
        while len(self._recent) > 1 and total_s - self._recent[0][1] >= self.rate_window_s:
            total_s -= self._recent.popleft()[1]
        self.rays_per_s = sum(r for r, _ in self._recent) / total_s
        self._update_max_res()

    def settled_res(self) -> int:
        """Long side of the settled view: a square view of that side renders in `settle_budget_s` at the measured
        rate (a wider or taller view has fewer rays), in [min_settled_res, max_settled_res], a multiple of 32."""
        rate = self.rays_per_s or 0.0
        side = int(math.sqrt(max(rate, 0.0) * self.settle_budget_s)) // 32 * 32
        return min(max(side, self.min_settled_res), self.max_settled_res)

    def _update_max_res(self) -> None:
        viewer = self._viewer
        if viewer is None or not self.auto_max_res:
            return
        slider = viewer.control_panel._max_res
        current = int(slider.value)
        if self._auto_res is not None and abs(current - self._auto_res) > 50:  # (the slider's step is 100)
            self.auto_max_res = False  # a user moved the slider: theirs from now on
            return
        target = self.settled_res()
        settled_a_while = time.monotonic() - self._auto_res_at > 3.0
        # a view that renders well over budget at the measured rate shrinks at once (the 20 % band below is in side
        # length, ~44 % in time: measured, a view left at 288 px after a fast first estimate settled in 2.4-2.8 s)
        rate = self.rays_per_s or 0.0
        limit_s = self.shrink_over_budget * self.settle_budget_s
        too_slow = target < current and rate > 0 and current * current / rate > limit_s
        if self._auto_res is None or too_slow or (abs(target - current) > 0.2 * current and settled_a_while):
            self._auto_res_from = current  # (the hook of the slider compares the two: `_attach_viewer`)
            self._auto_res, self._auto_res_at = target, time.monotonic()  # each change re-renders: not more often
            slider.value = target

    def set_provider(self, provider: PlaybackProvider) -> None:
        self.__dict__["_provider"] = provider

    def time_of_frame(self, frame: int) -> float:
        return frame / max(self.num_frames - 1, 1)

    def frame_of_time(self, t: float) -> int:
        return int(round(min(max(float(t), 0.0), 1.0) * max(self.num_frames - 1, 0)))

    # ------------------------------------------------------------------ GUI callbacks (fast: no decoding here)
    def _on_frame_slider(self, element: ViewerSlider) -> None:
        frame = int(round(element.value))
        frame = min(max(frame, 0), self.num_frames - 1)
        self._frame = frame
        self._sync_time_slider(frame)  # (sets the value the next render reads at once; its callbacks run later)
        self.request(frame)
        self._render_settled()

    def _on_time_slider(self, _: Any) -> None:
        if self._viewer is None:
            return
        frame = self.frame_of_time(self._viewer.control_panel.time)
        if frame != self._frame:
            self.show(frame)

    def _sync_time_slider(self, frame: int) -> None:
        if self._viewer is None:
            return
        t = self.time_of_frame(frame)
        if abs(self._viewer.control_panel.time - t) > 1e-9:
            self._viewer.control_panel.time = t

    def _attach_viewer(self, viewer: Any) -> None:
        self._viewer = viewer
        # read-outs change often: updating them must not make the viewer re-render (it wraps every cb_hook)
        self.readout_frame.cb_hook = lambda _: None
        self.readout_status.cb_hook = lambda _: None
        # a frame change moves no camera: instead of nerfstudio's preview-then-full re-render ("move", which its
        # wrapper of our hook and the Time slider's own hook would send), the full-resolution render at once
        self.frame_slider.cb_hook = self._on_frame_slider
        time_slider = viewer.control_panel._time
        user_time_hook = time_slider.cb_hook

        def on_time(element: Any) -> None:
            if abs(float(element.value) - self.time_of_frame(self._frame)) > 1e-9:
                user_time_hook(element)  # a user moved Time: nerfstudio's usual re-render

        time_slider.cb_hook = on_time
        # "Max res" set by `_update_max_res` (from the render thread, often between two chunks of a view): nerfstudio's
        # hook sends a "move", which throws away the render under way and starts over with a preview (server traces of
        # frame changes: 0.8-1.5 s of a 256-288 px render lost, settle 2.5-3.1 s instead of ~1 s). Our own change
        # lets the render finish unless the view it renders is over twice the new one's pixels (then starting over is
        # quicker); a larger view follows as a "step" (no preview, nothing interrupted).
        max_res = viewer.control_panel._max_res
        user_max_res_hook = max_res.cb_hook

        def on_max_res(element: Any) -> None:
            ours = self._auto_res is not None and abs(float(element.value) - self._auto_res) <= 50
            if not ours or (self._auto_res_from / max(self._auto_res, 1)) ** 2 > self.restart_over_pixels:
                user_max_res_hook(element)  # a user moved Max res, or the view in progress is far too big: re-render
            elif self._auto_res > self._auto_res_from:
                self._render_settled()

        max_res.cb_hook = on_max_res
        if time_slider.gui_handle is not None:
            time_slider.gui_handle.on_update(self._on_time_slider)
        self._sync_time_slider(self._frame)
        if self.initial_view is not None:
            viewer.viser_server.on_client_connect(self._set_initial_view)
        self.request(self._frame)

    def _render_settled(self) -> None:
        """Render the current view at "Max res" now, in every browser (nerfstudio's "step" action, as a training step
        does): a frame change skips the low-resolution preview and the 0.2 s wait before the full render. A render in
        progress finishes first; requests made meanwhile collapse into one (frames are dropped, nothing queues up)."""
        viewer = self._viewer
        if viewer is None or not getattr(viewer, "ready", False):
            return
        from nerfstudio.viewer.render_state_machine import RenderAction

        machines = getattr(viewer, "render_statemachines", {})
        for client_id, client in viewer.viser_server.get_clients().items():
            if client_id in machines:
                machines[client_id].action(RenderAction("step", viewer.get_camera_state(client)))

    def _set_initial_view(self, client: Any) -> None:
        from nerfstudio.viewer.viewer import VISER_NERFSTUDIO_SCALE_RATIO as scale

        assert self.initial_view is not None
        eye, target, up = self.initial_view
        with client.atomic():
            client.camera.up_direction = up
            client.camera.position = tuple(scale * v for v in eye)
            client.camera.look_at = tuple(scale * v for v in target)

    def show(self, frame: int) -> None:
        """Move the frame slider (as a user would): the viewer re-renders and the read-out follows."""
        frame = min(max(int(frame), 0), self.num_frames - 1)
        if self.frame_slider.gui_handle is None:  # no viewer: act directly
            self._frame = frame
            self.request(frame)
        else:
            self.frame_slider.value = frame  # fires _on_frame_slider (and the viewer's re-render)

    def play(self) -> None:
        self._ensure_worker()
        assert self._cond is not None
        with self._cond:
            first = self._frame if self._frame < self.num_frames - 1 else 0
            self._play_first, self._play_t0 = first, time.monotonic()
            self._playing = True
            self._cond.notify_all()
        self._set_visible(playing=True)

    def pause(self) -> None:
        self._playing = False
        if self._cond is not None:
            with self._cond:
                self._cond.notify_all()
        self._set_visible(playing=False)

    def _set_visible(self, playing: bool) -> None:
        for button, visible in ((self.play_button, not playing), (self.pause_button, playing)):
            if button.gui_handle is not None:
                button.gui_handle.visible = visible
            else:
                button.visible = visible

    # ------------------------------------------------------------------ background worker
    def request(self, frame: int) -> None:
        """Ask the worker to decode `frame` and refresh the read-outs (latest request wins)."""
        self._ensure_worker()
        assert self._cond is not None
        with self._cond:
            self._request, self._request_at = frame, time.monotonic()
            self._cond.notify_all()

    def _ensure_worker(self) -> None:
        if self._worker is not None and self._worker.is_alive():
            return
        self._cond = threading.Condition()
        self._worker = threading.Thread(target=self._run, name="vvc-playback", daemon=True)
        self._worker.start()

    def _run(self) -> None:
        assert self._cond is not None
        last_prepare = time.monotonic()
        while True:
            with self._cond:
                if self._request is None and not self._playing:
                    self._cond.wait(timeout=0.1 if self._pending_prefetch is not None else 0.5)
                req, self._request, req_at = self._request, None, self._request_at
                playing = self._playing
            if playing:
                self._pending_prefetch = None
            elif req is None and self._pending_prefetch is not None:
                now = time.monotonic()
                rendered = self._last_render_end > self._pending_since  # the view of the new frame has rendered
                if (self._view_idle_for(now) >= self.prefetch_idle_s if rendered
                        else now - self._pending_since >= self.prefetch_render_wait_s):
                    self._prefetch(self._pending_prefetch)
                    self._pending_prefetch = None
                continue
            asked = req is not None
            if req is None and not playing and time.monotonic() - last_prepare > self.idle_refresh_s:
                req = self._frame  # keep the read-outs current (e.g. a file a trainer is still writing)
            if req is not None:
                self._prepare(req)
                last_prepare = time.monotonic()
                if asked and not playing and self.prefetch and req + 1 < self.num_frames:
                    self._pending_prefetch = req + 1  # once the view of `req` has rendered
                    self._pending_since = req_at  # (a render that ends after the request is the new frame's)
            if playing:
                self._tick()
                last_prepare = time.monotonic()

    def _tick(self) -> None:
        """One step of playback: the wall clock says which frame is due; show it (skipping late ones)."""
        period = 1.0 / self.fps
        last = self.num_frames - 1
        due = self._play_first + int((time.monotonic() - self._play_t0) * self.fps)
        at_end = False
        if due > last:
            if self.playback_loop.value:
                self._play_first, self._play_t0 = 0, time.monotonic()
                due = 0
            else:
                due, at_end = last, True
        if due != self._frame:
            if due > self._frame + 1 and self._frame >= self._play_first:
                self.dropped_frames += due - self._frame - 1
            self._prepare(due)  # decode in this thread, then show: the render finds it in the cache
            self.shown_frames += 1
            self.show(due)
        if at_end:
            self.pause()
            return
        next_due = self._play_t0 + (due - self._play_first + 1) * period
        delay = next_due - time.monotonic()
        if delay > 0:
            assert self._cond is not None
            with self._cond:
                if self._request is None and self._playing:
                    self._cond.wait(timeout=delay)

    def _prefetch(self, frame: int) -> None:
        """Decode `frame` ahead (into the provider's cache); errors wait until the frame is asked for."""
        if self._provider is None:
            return
        with self._cond:
            if self._request is not None or self._playing:  # the user moved on: that comes first
                return
        try:
            self._provider.playback_prepare(frame)
        except Exception:  # shown by _prepare when the frame is requested
            return
        self.prefetched.append(frame)
        del self.prefetched[:-8]

    def _prepare(self, frame: int) -> None:
        if self._provider is None:
            readout, status = "", "no playback source"
        else:
            try:
                readout, status = self._provider.playback_prepare(frame)
            except Exception as exc:  # shown on screen; the viewer keeps running
                readout, status = f"{frame} · not decodable", f"ERROR: {exc}"
        if self._playing:
            status = f"{status} | playing at {self.fps:g} fps, {self.dropped_frames} frames dropped"
        if (readout, status) != (self.readout, self.status):  # unchanged text is not re-sent to browsers
            self.readout, self.status = readout, status
            self.readout_frame.value = readout
            self.readout_status.value = status
