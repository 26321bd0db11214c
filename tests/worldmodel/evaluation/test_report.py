"""`wm eval`'s report.html: self-contained, parseable, one table row per result, inline media."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tests.conftest import run_wm
from worldmodel.config.schema import Config
from worldmodel.evaluation.evaluate import MAX_CLIP_FRAMES, EpisodeClip, RowResult, first_episode_clip
from worldmodel.evaluation.report import ROW_LABELS, ReferenceRow, build_report, success_text

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
GIF_MAGIC = (b"GIF87a", b"GIF89a")
VOID = {"meta", "img", "br", "hr", "link", "input", "source", "col", "wbr"}


class ReportParser(HTMLParser):
    """Collects table rows (cell texts), <img> sources, episode figures and unclosed tags."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tables = 0
        self.body_rows: list[list[str]] = []
        self.header: list[str] = []
        self.images: list[str] = []
        self.figures: list[tuple[str, str]] = []
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._in_body = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        if tag not in VOID:
            self.stack.append(tag)
        if tag == "table":
            self.tables += 1
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(attrs.get("src", ""))
        elif tag == "figure":
            self.figures.append((attrs.get("data-task", ""), attrs.get("data-row", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._in_body:
                self.body_rows.append(self._row)
            else:
                self.header.extend(self._row)
            self._row = None
        elif tag == "tbody":
            self._in_body = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parse_report(path: Path) -> ReportParser:
    """Parse with html.parser; if a headless Chromium is installed, also check it renders the page."""
    text = path.read_text(encoding="utf-8")
    parser = ReportParser()
    parser.feed(text)
    parser.close()
    assert text.lstrip().startswith("<!DOCTYPE html>")
    assert not parser.errors and not parser.stack, (parser.errors, parser.stack)
    chromium = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)
    # CI installs Debian's chromium (.ci/run) and sets this, so a missing browser fails there loudly.
    if os.environ.get("JEPA_WM_REQUIRE_CHROMIUM") == "1":
        assert chromium, "JEPA_WM_REQUIRE_CHROMIUM=1 but no chromium on PATH"
    if chromium:
        dom = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", path.resolve().as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert dom.returncode == 0, dom.stderr[-2000:]
        assert "<table" in dom.stdout and dom.stdout.count("<img") == len(parser.images)
    return parser


def decode_data_uri(uri: str) -> tuple[str, bytes]:
    match = re.fullmatch(r"data:([a-z/]+);base64,([A-Za-z0-9+/=]+)", uri)
    assert match, uri[:80]
    return match.group(1), base64.b64decode(match.group(2), validate=True)


@pytest.fixture(scope="module")
def tiny_eval(tmp_path_factory) -> tuple[Path, object]:
    """The same tiny real eval as tests/cli/test_eval_cli.py: Reach, oracle + simulator rows."""
    root = tmp_path_factory.mktemp("report")
    result = run_wm(
        "eval",
        "tasks=[jepa_wm/Reach-v0]",
        "rows=[oracle,simulator]",
        "episodes=2",
        "budget=6",
        "sim_samples=24",
        "sim_iterations=2",
        "plan.horizon=1",
        f"run.root={root}",
    )
    assert result.returncode == 0, result.stderr
    return root / "eval" / "eval", result


def test_eval_writes_a_self_contained_report(tiny_eval) -> None:
    out, result = tiny_eval
    report = out / "report.html"
    assert f"report: {report}" in result.stdout.replace("\n", "")
    parser = parse_report(report)
    results = json.loads((out / "results.json").read_text())["results"]

    # the success table: one body row per result, success text as the CLI prints it
    assert parser.tables == 1
    assert len(parser.body_rows) == len(results) == 2
    assert "success (95% CI)" in parser.header and "peak memory" in parser.header
    col = parser.header.index("success (95% CI)")
    for row, r in zip(parser.body_rows, results, strict=True):
        assert row[0] == r["task"] and row[1] == r["row"]
        assert row[col] == success_text(SimpleNamespace(**r))
    assert parser.body_rows[0][col].startswith("100%")  # the oracle solves Reach

    # config and how-to-read at the top
    text = report.read_text(encoding="utf-8")
    assert "git commit" in text and "heldout" in text and "6 MPC steps" in text
    assert "How to read this" in text and "planner&#x27;s ceiling" in text
    assert f"<b>oracle</b> = {ROW_LABELS['oracle']}" in text and "(not run here)" not in text

    # inline plots (PNG) and one episode GIF per (task, row); every data URI decodes
    assert not any(src.startswith(("http", "file:", "/")) for src in parser.images)
    kinds = [decode_data_uri(src) for src in parser.images]
    pngs = [data for mime, data in kinds if mime == "image/png"]
    gifs = [data for mime, data in kinds if mime == "image/gif"]
    assert len(pngs) >= 2 and all(d.startswith(PNG_MAGIC) for d in pngs)
    assert len(gifs) == len(results) and all(d[:6] in GIF_MAGIC for d in gifs)
    assert sorted(parser.figures) == sorted((r["task"], r["row"]) for r in results)
    assert report.stat().st_size < 2_000_000
    assert not list(out.glob(".*tmp*"))  # the atomic write left nothing behind


def test_results_json_has_no_frames(tiny_eval) -> None:
    out, _ = tiny_eval
    for r in json.loads((out / "results.json").read_text())["results"]:
        assert "episode" not in r and r["energies"]


def fake_result(row: str, frames: int = 3) -> RowResult:
    rng = np.random.default_rng(0)
    clip = EpisodeClip(
        seed=7,
        success=row == "oracle",
        final_distance_cm=1.5,
        steps=list(range(frames)),
        frames=[rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(frames)],
        goal=np.zeros((64, 64, 3), np.uint8),
    )
    return RowResult(
        "jepa_wm/<Reach>&-v0", row, "pixels", 4, 0.75, 0.3, 0.95, 2.0, None, 12.0, 512.0, "cem 8x2 h1",
        [[1.0, 0.5]], clip,
    )  # fmt: skip


def test_build_report_escapes_text_and_skips_missing_plots(tmp_path) -> None:
    results = [fake_result("oracle"), fake_result("learned")]
    page = build_report(results, Config(), {"git_commit": None}, {"success": tmp_path / "missing.png"})
    path = tmp_path / "r.html"
    path.write_text(page, encoding="utf-8")
    parser = parse_report(path)
    assert [row[0] for row in parser.body_rows] == ["jepa_wm/<Reach>&-v0"] * 2
    assert "<Reach>" not in page and "&lt;Reach&gt;&amp;" in page
    assert [row[4] for row in parser.body_rows] == ["75% [30%, 95%]"] * 2
    assert len(parser.images) == 2  # no plot files: just the two GIFs
    assert all(decode_data_uri(src)[1][:6] in GIF_MAGIC for src in parser.images)


def test_build_report_shows_reference_rows_beside_the_eval_rows(tmp_path) -> None:
    """`wm demo`'s reference policies: rows with their numbers, named as the demo's table names them."""
    references = [
        ReferenceRow("jepa_wm/<Reach>&-v0", "random", 10, 50, 0.0, 0.0, 0.28, 27.7),
        ReferenceRow("jepa_wm/<Reach>&-v0", "oracle", 10, 50, 1.0, 0.72, 1.0, 0.04),
    ]
    page = build_report([fake_result("learned")], Config(), {}, {}, references)
    path = tmp_path / "r.html"
    path.write_text(page, encoding="utf-8")
    rows = parse_report(path).body_rows
    assert [r[1] for r in rows] == ["random actions", "scripted expert (privileged)", "learned"]
    assert rows[0][4:6] == ["0% [0%, 28%]", "27.7 cm"] and rows[1][4:6] == ["100% [72%, 100%]", "0.0 cm"]
    assert rows[0][9] == "none (50 env steps)"
    help_text = page[page.index("How to read this") : page.index("</p>", page.index("How to read this"))]
    assert "<b>random actions</b>: uniform random actions" in help_text
    assert "<b>scripted expert (privileged)</b>: a hand-written controller" in help_text
    # eval rows that did not run are listed once, by their key and the name the demo prints
    assert (
        "Not run here (add them with eval.rows): <b>oracle</b> = true-distance planner (ceiling);"
        in help_text
    )
    assert "<b>learned</b> = CEM + learned world model" in help_text


def test_first_episode_clip_keeps_at_most_max_frames_first_and_last() -> None:
    frames = [np.full((64, 64, 3), i, np.uint8) for i in range(101)]
    outcome = SimpleNamespace(seed=3, success=True, final_distance=0.02, frames=frames, goal=frames[0])
    clip = first_episode_clip(outcome, probe_env=None)
    assert len(clip.frames) == len(clip.steps) == MAX_CLIP_FRAMES
    assert clip.steps[0] == 0 and clip.steps[-1] == 100
    assert int(clip.frames[-1][0, 0, 0]) == 100 and clip.final_distance_cm == pytest.approx(2.0)
