"""`wm eval`'s report.html: one self-contained page to compare planners and runs in a browser.

`build_report` is a pure function (results + config + plot paths -> an HTML string): the eval
config at the top, a "how to read this" line for the rows, the success table, the success and
energy plots and one short episode video per (task, row), all inlined as base64 data URIs so the
file can be mailed or moved on its own. Reference policies (`wm demo`'s random actions and scripted
expert) join the table when given, so the page shows what the terminal showed. No templating
library: text goes through html.escape.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from worldmodel.config.schema import Config
from worldmodel.evaluation.plan_run import compose_frames
from worldmodel.evaluation.rows import split_text

NO_VALUE = "—"  # a cell the env cannot fill: no distance, no visual splits
FRAME_MS = 200  # GIF frame time (the arm env's default control rate is 5 Hz)
LAST_FRAME_MS = 1200  # hold the final frame so the outcome can be seen before the loop restarts

# What each eval row (eval.rows) is called wherever people read results: `wm demo`'s table, here.
ROW_LABELS = {
    "oracle": "true-distance planner (ceiling)",
    "simulator": "CEM, our latent, simulator",
    "learned": "CEM + learned world model",
    "random": "random actions (eval row)",
    "shooting": "random shooting + learned world model",
}
ROW_HELP = {
    "oracle": "true task distance with simulator dynamics — the planner's ceiling",
    "simulator": "the encoder's latent energy with perfect (simulator) dynamics — the encoder alone",
    "learned": "the encoder's latent energy with the learned predictor — the full world model",
    "random": "uniform random actions for the step budget, no planning — the floor",
    "shooting": "random shooting (no CEM refinement) with the learned model at the same sample budget",
}
# Reference policies (envs/policies.py names) that run without any planner or model.
REFERENCE_LABELS = {"random": "random actions", "oracle": "scripted expert (privileged)"}
REFERENCE_HELP = {
    "random": "uniform random actions for the env's whole episode, no planning — the floor",
    "oracle": "a hand-written controller that reads the simulator's true state, no planning — "
    "proof the task can be solved",
}

COLUMNS = (
    "task",
    "row",
    "encoder",
    "episodes",
    "success (95% CI)",
    "mean final distance",
    "median steps to success",
    "ms / action",
    "peak memory",
    "planner",
)

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 72em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }
th { background: #f2f2f2; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.row-oracle td { background: #f7f7ff; } tr.row-learned td { background: #f7fff7; }
tr.row-reference td { color: #555; font-style: italic; }
dl.config { display: grid; grid-template-columns: max-content auto; gap: 0.15em 1em; }
dl.config dt { font-weight: 600; } dl.config dd { margin: 0; font-family: monospace; }
.help { background: #fffbe6; border-left: 4px solid #e6c200; padding: 0.5em 0.8em; }
.plots img, .episodes img { border: 1px solid #ddd; margin: 0.3em; image-rendering: pixelated; }
.episodes { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; } figcaption { font-size: 0.85em; max-width: 24em; }
.ok { color: #167a16; font-weight: 600; } .fail { color: #b01c1c; font-weight: 600; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 0.8em; }
"""


@dataclass
class ReferenceRow:
    """One reference policy's result on one task, shown beside the eval rows."""

    task: str
    policy: str  # a REFERENCE_LABELS key
    episodes: int
    steps: int  # env steps per episode: the env's own episode length, not eval.budget
    success_rate: float
    ci_low: float
    ci_high: float
    mean_final_distance_cm: float | None  # None: the env gives no distance

    @property
    def label(self) -> str:
        return REFERENCE_LABELS[self.policy]


def success_text(r: Any) -> str:
    """The success cell, as the CLI table prints it: `80% [49%, 94%]`."""
    return f"{r.success_rate:.0%} [{r.ci_low:.0%}, {r.ci_high:.0%}]"


def distance_text(cm: float | None) -> str:
    """A distance cell: `12.3 cm`, or `—` when the env gives no distance (success-only envs)."""
    if cm is None or not np.isfinite(cm):
        return NO_VALUE
    return f"{cm:.1f} cm"


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def episode_gif(clip: Any) -> bytes:
    """An animated GIF of `camera | goal` per kept step, via `wm plan`'s frame composition."""
    h = int(np.asarray(clip.goal).shape[0])
    height = 2 * h if h < 128 else h  # 64 px frames -> 128 px panels: at most 2x
    video = compose_frames(clip.frames, clip.goal, None, goal_label="goal", height=height, steps=clip.steps)
    images = [Image.fromarray(frame) for frame in video]
    durations = [FRAME_MS] * (len(images) - 1) + [LAST_FRAME_MS]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0)
    return buffer.getvalue()


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _config_block(config: Config, meta: Mapping[str, Any], references: Sequence[ReferenceRow]) -> str:
    ev, plan = config.eval, config.plan
    budgets = []
    if "learned" in ev.rows:
        budgets.append(f"learned row: {plan.planner} {plan.samples} samples x {plan.iterations} iterations")
    if {"oracle", "simulator"} & set(ev.rows):
        budgets.append(
            f"oracle/simulator rows: {plan.planner} {ev.sim_samples} samples x {ev.sim_iterations} iterations"
        )
    items = [
        ("created", meta.get("created", "")),
        ("git commit", meta.get("git_commit") or "unknown (not a git checkout)"),
        ("tasks", ", ".join(ev.tasks)),
        ("rows", ", ".join(ev.rows)),
        *_references_item(references),
        ("split", split_text(ev.tasks, ev.split)),
        ("episodes per (task, row)", ev.episodes),
        ("budget", f"{ev.budget} MPC steps per episode"),
        (
            "planner",
            f"horizon {plan.horizon}, execute {plan.execute}, energy {plan.energy}, seed {plan.seed}; "
            + "; ".join(budgets),
        ),
        ("encoder (simulator row)", ev.encoder),
        ("world model (learned row)", ev.world_model or "-"),
        ("torch threads", meta.get("torch_threads", "")),
    ]
    body = "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in items)
    return f'<dl class="config">{body}</dl>'


def _references_item(references: Sequence[ReferenceRow]) -> list[tuple[str, str]]:
    if not references:
        return []
    labels = ", ".join(dict.fromkeys(r.label for r in references))
    steps = ", ".join(dict.fromkeys(str(r.steps) for r in references))
    return [("reference policies", f"{labels} ({steps} env steps per episode, no planning)")]


def _help_block(rows: list[str], references: Sequence[ReferenceRow]) -> str:
    shown = [
        f"<b>{_esc(row)}</b> = {_esc(ROW_LABELS[row])}: {_esc(text)}"
        for row, text in ROW_HELP.items()
        if row in rows
    ]
    shown += [
        f"<b>{_esc(REFERENCE_LABELS[policy])}</b>: {_esc(text)}"
        for policy, text in REFERENCE_HELP.items()
        if any(r.policy == policy for r in references)
    ]
    missing = [f"<b>{_esc(row)}</b> = {_esc(ROW_LABELS[row])}" for row in ROW_HELP if row not in rows]
    not_run = f" Not run here (add them with eval.rows): {'; '.join(missing)}." if missing else ""
    return (
        '<p class="help">How to read this: each row isolates one part of the system. '
        f"{'; '.join(shown)}. A drop from one row to the next shows which part limits success.{not_run}</p>"
    )


def _table(results: list, references: Sequence[ReferenceRow]) -> str:
    """Per task, its reference policies first (as `wm demo` prints them), then its eval rows."""
    head = "".join(f"<th>{_esc(c)}</th>" for c in COLUMNS)
    lines = []
    tasks = list(dict.fromkeys([*(r.task for r in results), *(r.task for r in references)]))
    for task in tasks:
        lines += [_reference_line(r) for r in references if r.task == task]
        lines += [_result_line(r) for r in results if r.task == task]
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"


def _result_line(r: Any) -> str:
    steps = "-" if r.median_steps_to_success is None else f"{r.median_steps_to_success:.0f}"
    cells = [
        (r.task, ""),
        (r.row, ""),
        (r.encoder, ""),
        (r.episodes, "num"),
        (success_text(r), "num"),
        (distance_text(r.mean_final_distance_cm), "num"),
        (steps, "num"),
        (f"{r.ms_per_action:.0f}", "num"),
        (f"{r.peak_memory_mb:.0f} MB", "num"),
        (r.planner, ""),
    ]
    return _tr(cells, f"row-{r.row}")


def _reference_line(r: ReferenceRow) -> str:
    cells = [
        (r.task, ""),
        (r.label, ""),
        ("-", ""),
        (r.episodes, "num"),
        (success_text(r), "num"),
        (distance_text(r.mean_final_distance_cm), "num"),
        ("-", "num"),
        ("-", "num"),
        ("-", "num"),
        (f"none ({r.steps} env steps)", ""),
    ]
    return _tr(cells, "row-reference")


def _tr(cells: list[tuple[Any, str]], css: str) -> str:
    tds = "".join(f'<td class="{c}">{_esc(v)}</td>' if c else f"<td>{_esc(v)}</td>" for v, c in cells)
    return f'<tr class="{_esc(css)}">{tds}</tr>'


def _plots(plots: Mapping[str, Path]) -> str:
    out = []
    for name, path in plots.items():
        path = Path(path)
        if not path.is_file():
            continue
        uri = data_uri(path.read_bytes(), "image/png")
        out.append(f'<img src="{uri}" alt="{_esc(name)} plot" title="{_esc(path.name)}">')
    return f'<div class="plots">{"".join(out)}</div>'


def _episodes(results: list) -> str:
    out = []
    for r in results:
        clip = r.episode
        if clip is None or not clip.frames:
            continue
        outcome = "success" if clip.success else "failed"
        caption = (
            f"{_esc(r.task.split('/')[-1])} · {_esc(r.row)}: seed {clip.seed}, "
            f'<span class="{"ok" if clip.success else "fail"}">{outcome}</span>, '
            f"final distance {_esc(distance_text(clip.final_distance_cm))} "
            f"({len(clip.frames)} frames of steps 0..{clip.steps[-1]})"
        )
        uri = data_uri(episode_gif(clip), "image/gif")
        alt = f"episode video: {r.task} {r.row}"
        out.append(
            f'<figure data-task="{_esc(r.task)}" data-row="{_esc(r.row)}">'
            f'<img src="{uri}" alt="{_esc(alt)}"><figcaption>{caption}</figcaption></figure>'
        )
    return f'<div class="episodes">{"".join(out)}</div>'


def build_report(
    results: list,
    config: Config,
    meta: Mapping[str, Any],
    plots: Mapping[str, Path],
    references: Sequence[ReferenceRow] = (),
) -> str:
    """The whole page. `meta` holds results.json's created / git_commit / config (YAML) / torch_threads."""
    title = f"wm eval: {config.eval.name}"
    rows = list(dict.fromkeys(r.row for r in results)) or list(config.eval.rows)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_esc(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{_esc(title)} — zero-shot goal-image success</h1>",
        _config_block(config, meta, references),
        _help_block(rows, references),
        "<h2>Success</h2>",
        _table(results, references),
        "<p><small>Success is judged by the env at the end of the step budget; distances are the env's "
        "own task distance (— where the env gives none: success only); peak memory is the eval process's peak resident memory once the row "
        "had run (it only grows).</small></p>",
        "<h2>Plots</h2>",
        _plots(plots),
        "<h2>One episode per task and row</h2>",
        "<p>The first episode of each (task, row): camera frame | goal image, played as it was run.</p>",
        _episodes(results),
        "<h2>Resolved config</h2>",
        f"<details><summary>YAML</summary><pre>{_esc(meta.get('config', ''))}</pre></details>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def write_report(
    path: Path,
    results: list,
    config: Config,
    meta: Mapping[str, Any],
    plots: Mapping[str, Path],
    references: Sequence[ReferenceRow] = (),
) -> Path:
    """`build_report` written whole or not at all (a temp file next to `path`, then a rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(build_report(results, config, meta, plots, references), encoding="utf-8")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
