"""`wm eval` and `wm probe` show progress: a bar on a terminal, a few plain lines elsewhere, never a flood."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from worldmodel.common import progress as progress_module
from worldmodel.common.progress import ProgressReport, progress_mode
from worldmodel.config.schema import load_config
from worldmodel.evaluation.evaluate import evaluate
from worldmodel.evaluation.probe_run import run_probe

ORACLE_REACH = ["tasks=[jepa_wm/Reach-v0]", "rows=[oracle]", "episodes=2", "budget=6", "plan.horizon=1"]


def test_eval_lines_report_episodes_steps_and_successes(capsys) -> None:
    capsys.readouterr()
    (result,) = evaluate(load_config(ORACLE_REACH, section="eval"))  # stderr is not a terminal here
    out, err = capsys.readouterr()
    first, last = out.splitlines()  # one line as the row starts, one as it ends
    assert first == "[eval] jepa_wm/Reach-v0 row=oracle: 2 episodes x 6 steps ..."
    assert last.startswith("[eval] jepa_wm/Reach-v0 row=oracle: 12/12 episode steps, success 2/2 in ")
    assert result.success_rate == 1.0 and err == ""  # stderr stays for the one error line


def test_eval_bar_shows_success_so_far(capsys) -> None:
    capsys.readouterr()
    evaluate(load_config(ORACLE_REACH, section="eval"), progress="bar")
    out, err = capsys.readouterr()  # not a terminal: the bar's final state, once, on stderr
    assert "[eval] jepa_wm/Reach-v0 row=oracle" in err and "12/12" in err and "success 2/2" in err
    assert len(err.strip().splitlines()) == 1 and out == ""


def test_no_progress_is_silent(capsys) -> None:
    capsys.readouterr()
    evaluate(load_config([*ORACLE_REACH, "episodes=1", "budget=1"], section="eval"), progress=False)
    assert capsys.readouterr() == ("", "")


def test_probe_lines_count_episodes_and_frames(capsys) -> None:
    capsys.readouterr()
    rows = run_probe(["pixels"], [2], "jepa_wm/Reach-v0", 2, 3, "heldout", cross_appearance=False)
    out = capsys.readouterr().out
    assert len(rows) == 1
    assert "[probe] simulate jepa_wm/Reach-v0 (heldout): 2/2 episodes in " in out
    assert "[probe] encode pixels: 6/6 frames in " in out and len(out.splitlines()) == 4


def test_a_terminal_gets_a_live_bar_and_a_log_gets_few_lines(monkeypatch) -> None:
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=150)
    with ProgressReport("eval", "bar", console=terminal) as report:
        task = report.task("Reach row=oracle", 10, "episode steps")
        for _ in range(10):
            task.update(advance=1, status="success 1/2")
    assert "━" in screen.getvalue() and "10/10" in screen.getvalue() and "success 1/2" in screen.getvalue()

    log = io.StringIO()
    with ProgressReport("eval", "lines", console=Console(file=log, width=150)) as report:
        task = report.task("Reach", 10_000, "episode steps")
        for _ in range(10_000):
            task.update(advance=1)
        task.finish("success 0/2")
    assert len(log.getvalue().splitlines()) == 2  # start and end: no line per step
    monkeypatch.setattr(progress_module, "LINE_EVERY_S", 0.0)
    log = io.StringIO()
    with ProgressReport("eval", "lines", console=Console(file=log, width=150)) as report:
        task = report.task("Reach", 3, "episode steps")
        for _ in range(3):
            task.update(advance=1, status="success 1/2")
    assert "[eval] Reach: 1/3 episode steps, success 1/2" in log.getvalue()  # a long task says where it is


def test_progress_modes(monkeypatch) -> None:
    assert (
        progress_mode(False) == "off" and progress_mode("bar") == "bar" and progress_mode("lines") == "lines"
    )
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert progress_mode(True) == "lines"
    with pytest.raises(ValueError, match="progress"):
        progress_mode("loud")
