"""Progress bars in a log file (`nerfstudio_vvc.progress`): rich alone prints nothing there until the bar stops."""

from io import StringIO

from rich.console import Console
from rich.progress import Task

from nerfstudio_vvc.progress import LoggedProgress, task_line, track


def console(terminal: bool) -> Console:
    return Console(file=StringIO(), force_terminal=terminal, force_jupyter=False, width=200)


def lines(c: Console):
    return c.file.getvalue().splitlines()


def test_a_log_gets_a_status_line_per_interval_and_one_done_line_per_task():
    c = console(terminal=False)
    with LoggedProgress(console=c, every_s=0.0) as bar:
        fit = bar.add_task("fit, epochs", total=3)
        bar.advance(fit)
        assert lines(c)[-1].startswith("fit, epochs: 1/3 (33%), ") and "elapsed" in lines(c)[-1], lines(c)
        bar.update(fit, advance=1)
        assert lines(c)[-1].startswith("fit, epochs: 2/3 (67%)"), lines(c)
        bar.advance(fit)
        bar.update(fit, completed=3)  # updates after the end: no second done line
        written_in_the_bar = list(lines(c))
    done = [ln for ln in written_in_the_bar if ln.startswith("fit, epochs: 3/3 (100%)")]
    assert len(done) == 1 and done[0].endswith(", done"), written_in_the_bar


def test_status_lines_are_rate_limited_but_a_finished_task_is_always_reported():
    c = console(terminal=False)
    with LoggedProgress(console=c, every_s=3600.0) as bar:
        frames = bar.add_task("frames", total=2)
        for frame in range(2):
            it = bar.add_task(f"frame {frame}", total=50)
            for _ in range(50):
                bar.advance(it)
            bar.advance(frames)
        written_in_the_bar = list(lines(c))
    assert [ln.split(",")[0] for ln in written_in_the_bar] == [
        "frame 0: 50/50 (100%)",
        "frame 1: 50/50 (100%)",
        "frames: 2/2 (100%)",
    ], written_in_the_bar


def test_a_terminal_gets_rich_bars_only():
    c = console(terminal=True)
    with LoggedProgress(console=c, every_s=0.0) as bar:
        t = bar.add_task("fit", total=2)
        bar.advance(t)
        bar.advance(t)
    assert "(100%)" not in c.file.getvalue() and "1/2 (50%)" not in c.file.getvalue()


def test_track_yields_every_item_and_reports_the_end_in_a_log():
    c = console(terminal=False)
    assert list(track(range(4), description="rendering test views", console=c, every_s=3600.0)) == [0, 1, 2, 3]
    assert any(ln.startswith("rendering test views: 4/4 (100%)") for ln in lines(c)), lines(c)


def test_a_slow_task_gets_the_time_left_at_its_mean_rate():
    """rich estimates the time left from the last 30 s of updates: a task that advances once a minute (an eval frame
    at 640x360) got no estimate."""
    task = Task(0, "rendering test views", total=30, completed=8, _get_time=lambda: 272.0)
    task.start_time = 0.0  # 8 frames in 272 s: 34 s a frame, 22 to go
    assert task.time_remaining is None
    assert task_line(task) == "rendering test views: 8/30 (27%), 0:04:32 elapsed, ~0:12:28 left"
