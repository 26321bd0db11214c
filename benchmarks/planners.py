"""`wm bench planners`: success against planning time for every planner, on the same episodes.

CEM, MPPI, gradient descent and random shooting, each at a few budgets (samples x iterations), on
Reach and Push (Push plans through its sub-goal images), with simulator dynamics and with the learned
world model. Every point plays the same held-out seeds and goals. The question it answers: which
planner matches the official CEM budget's success soonest, and at what share of its time.

Points are measured cheapest budget first and published after each one (a stopped study still has a
table) to benchmarks/results/<name>.json, <name>.png and the table between the <NAME> markers of
docs/results.md (--name, default planners: one study per world model or row set). A point is reused
while its settings and weights are unchanged: from the local points file, or from the committed
JSON, so a fresh clone that retrains the same run resumes there. With --chunk N a point is played
N episodes at a time and every finished chunk is published too (the JSON's `unfinished`), so an
hours-long simulator point survives a killed session and adds up over fresh clones.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import itertools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from benchmarks.common import StudyParser, name_list, positive, write_timing_result
from benchmarks.planners_report import (
    OFFICIAL_PLANNER,
    Budget,
    budget,
    budget_cost,
    plot,
    soonest,
    table,
    update_page,
)
from planners.config import PLANNER_NAMES
from worldmodel.common.atomic import write_json_atomic
from worldmodel.common.errors import UserError
from worldmodel.common.threads import use_threads
from worldmodel.config.schema import Config, load_config
from worldmodel.evaluation.demo import say
from worldmodel.evaluation.evaluate import evaluate, wilson_interval
from worldmodel.evaluation.rows import SIMULATOR_ROWS, preset_world_model
from worldmodel.models.checkpoints import safetensors_metadata
from worldmodel.models.predictor_file import PREDICTOR_FILE, member_files
from worldmodel.models.world_model import is_ac_run

ROWS = ("simulator", "learned")
OFFICIAL_BUDGET = "256x5"
OFFICIAL_HORIZON = 3
DEFAULT_BUDGETS = f"64x2,128x3,{OFFICIAL_BUDGET},512x5"
PUSH = "jepa_wm/Push-v0"
# Planners that differentiate through the rollout: the simulator rows cannot give them gradients.
NEEDS_GRADIENTS = ("gradient",)


def budget_list(text: str) -> list[Budget]:
    """argparse type: comma-separated budgets, cheapest first, no repeats."""
    budgets = {budget(part) for part in text.split(",") if part.strip()}
    if not budgets:
        raise argparse.ArgumentTypeError(f"expected budgets like {DEFAULT_BUDGETS}, got {text!r}")
    return sorted(budgets, key=budget_cost)


def result_name(text: str) -> str:
    """argparse type: planners or planners_<label> (file-name safe; `make bench` knows it is a study)."""
    if not re.fullmatch(r"planners(_[a-z0-9]+)*", text):
        raise argparse.ArgumentTypeError(
            f"expected planners or planners_<label> like planners_simulator, got {text!r}"
        )
    return text


def task_list(text: str) -> list[str]:
    """argparse type: comma-separated env ids, at least one."""
    tasks = list(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    if not tasks:
        raise argparse.ArgumentTypeError(f"expected env ids like jepa_wm/Reach-v0,{PUSH}, got {text!r}")
    return tasks


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = StudyParser(prog="wm bench planners", description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument(
        "--world-model",
        help="AC run of the learned row (default: runs/ac/<run.name>, the one `wm demo` trains)",
    )
    parser.add_argument(
        "--encoder",
        help="latent of the simulator row: an AC run, a pretrain run, pixels (default: the --world-model "
        "run, i.e. the learned row's own latent)",
    )
    parser.add_argument(
        "--episodes", type=positive, default=20, help="held-out episodes per point (default 20)"
    )
    parser.add_argument(
        "--budgets",
        type=budget_list,
        default=budget_list(DEFAULT_BUDGETS),
        help=f"samples x iterations per point (default {DEFAULT_BUDGETS}); for the gradient planner "
        "samples = parallel restarts and iterations = Adam steps",
    )
    parser.add_argument(
        "--official",
        type=budget,
        default=budget(OFFICIAL_BUDGET),
        help=f"the reference point, CEM at this budget (default {OFFICIAL_BUDGET}; added to --budgets "
        "and cem to --planners when missing)",
    )
    parser.add_argument(
        "--tasks",
        default=["jepa_wm/Reach-v0", PUSH],
        type=task_list,
        help=f"comma-separated env ids (default jepa_wm/Reach-v0,{PUSH}; Push plans through sub-goals)",
    )
    parser.add_argument(
        "--chunk",
        type=positive,
        help="play each point N episodes at a time and keep every finished chunk, so a study killed "
        "inside an hours-long point resumes at its next chunk (the same episodes; ms per action is "
        "then measured at N episodes per batch, and the point records its chunk size)",
    )
    parser.add_argument("--rows", type=name_list(ROWS), default=list(ROWS), help="simulator,learned")
    parser.add_argument(
        "--planners",
        type=name_list(PLANNER_NAMES),
        default=list(PLANNER_NAMES),
        help=f"{','.join(PLANNER_NAMES)} (random = random shooting; gradient has no simulator row)",
    )
    parser.add_argument(
        "--name",
        type=result_name,
        default="planners",
        help="the result's name: <name>.json and .png in --results-dir and its own table in "
        "docs/results.md (default planners; e.g. planners_simulator for a study of another run)",
    )
    parser.add_output_options(
        "<name>",
        "config overrides for every point, e.g. preset=small eval.budget=30 (plan.samples, "
        "plan.iterations and plan.planner are the study's; plan.horizon defaults to the official 3)",
    )
    args = parser.parse_args(argv)
    if args.official not in args.budgets:
        args.budgets = budget_list(",".join(map(str, [*args.budgets, args.official])))
    if OFFICIAL_PLANNER not in args.planners:
        args.planners = [OFFICIAL_PLANNER, *args.planners]
    return args


def base_config(args: argparse.Namespace) -> Config:
    """The shared config: the preset and overrides, one task and row per point filled in later."""
    config = load_config([f"plan.horizon={OFFICIAL_HORIZON}", *args.overrides])  # theirs win
    world_model = args.world_model or str(preset_world_model(config))
    if ("learned" in args.rows or not args.encoder) and not is_ac_run(world_model):
        raise UserError(
            f"wm bench planners: {world_model} is no AC run (`wm demo` or `wm train` writes one; "
            f"--world-model picks another)"
        )
    config.eval.world_model = world_model
    config.eval.encoder = args.encoder or world_model
    config.eval.tasks, config.eval.episodes = args.tasks, args.episodes
    config.eval.diagnostic_episodes = 0  # every row plans the same --episodes
    if PUSH not in config.eval.subgoals:  # a preset's own list (small: PickPlace) must not drop it
        config.eval.subgoals = [*config.eval.subgoals, PUSH]
    return config


def point_key(task: str, row: str, planner: str, point_budget: Budget | str) -> str:
    return f"{task} {row} {planner} {point_budget}"


def point_config(base: Config, task: str, row: str, planner: str, point_budget: Budget) -> Config:
    """One point: the same planner settings on both rows (the simulator rows' `eval.sim_*` follow)."""
    config = copy.deepcopy(base)
    config.eval.tasks, config.eval.rows = [task], [row]
    config.plan.planner = planner
    config.plan.samples = config.eval.sim_samples = point_budget.samples
    config.plan.iterations = config.eval.sim_iterations = point_budget.iterations
    config.eval.sim_output = config.plan.output
    config.validate()
    return config


# Config keys added after points were first stored, with the value that behaves as before they
# existed: at that value they are left out of the fingerprint, so the stored points stay valid.
NEUTRAL_KEYS = {
    ("eval", "first_episode"): 0,
    ("readout", "transport_weight"): 0.0,
    ("readout", "scene_weight"): 0.0,
    ("eval", "object_weight"): 0.0,
    ("eval", "object_temperature"): 0.01,
    ("readout", "object_weight"): 0.0,
    ("readout", "object_temperature"): 0.01,
    ("train", "ensemble"): 1,
    ("plan", "disagreement_weight"): 0.0,
    ("plan", "disagreement_dims"): [],
    ("eval", "save_episodes"): "",
    ("readout", "state_weight"): 0.0,
    ("readout", "state_dims"): [],
    ("readout", "state_source"): "tokens",
    ("readout", "pixel_steps"): 2000,
    ("eval", "sim_action_cost"): 0.0,
}


# What a simulator point does not use: it plans with true dynamics, so the predictor and the sections
# that shape only the predictor stay out of its fingerprint (it hashes the encoder and readout
# instead), and an hours-long simulator point stays valid while the predictor is retrained.
PREDICTOR_ONLY_SECTIONS = ("ac", "train")


def fingerprint(config: Config) -> str:
    """What a stored point must match to be reused: the resolved config (less `NEUTRAL_KEYS` at
    their neutral values, and on the simulator row less `PREDICTOR_ONLY_SECTIONS`) and the contents
    of the weights the point loads (contents, not dates or header order: a fresh clone that retrains
    the same run reuses it)."""
    simulator = config.eval.rows == ["simulator"]
    settings = OmegaConf.to_container(OmegaConf.structured(config))
    for (section, key), neutral in NEUTRAL_KEYS.items():
        if settings[section][key] == neutral:
            del settings[section][key]
    for section in PREDICTOR_ONLY_SECTIONS if simulator else ():
        del settings[section]
    digest = hashlib.sha256(OmegaConf.to_yaml(settings).encode())
    run = Path(config.eval.world_model)
    members = set(member_files(run)) if run.is_dir() else set()
    for file in weight_files(config, simulator):
        name = f"{file.parent.name}/{file.name}" if file in members else file.name
        digest.update(name.encode() + weights_digest(file))
    return digest.hexdigest()


def weight_files(config: Config, simulator: bool) -> list[Path]:
    """The weights files of the point's runs (an ensemble's members included); for the simulator row
    the encoder the predictor names (the encoder and readout are all it loads) in place of the
    predictors."""
    files: list[Path] = []
    for name in (config.eval.world_model, config.eval.encoder):
        path = Path(name)
        files += sorted(path.glob("*.safetensors")) + member_files(path) if path.is_dir() else [path]
    if simulator:
        for predictor in [f for f in files if f.name == PREDICTOR_FILE and f.is_file()]:
            encoder = Path(safetensors_metadata(predictor).get("encoder", ""))
            files += sorted(encoder.glob("*.safetensors")) if encoder.is_dir() else [encoder]
        files = [f for f in files if f.name != PREDICTOR_FILE]
    return [f for f in dict.fromkeys(files) if f.is_file()]


def weights_digest(path: Path) -> bytes:
    """A weights file's contents: for safetensors its header with sorted keys and its data. Our saves
    sort the header already; files written elsewhere (or before) may order the metadata anew."""
    data = path.read_bytes()
    try:
        size = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + size])
    except (ValueError, UnicodeDecodeError):
        return hashlib.sha256(data).digest()  # not safetensors: its bytes
    canonical = json.dumps(header, sort_keys=True).encode()
    return hashlib.sha256(canonical + data[8 + size :]).digest()


def point_settings(config: Config, chunk: int | None, whole: str | None = None) -> str:
    """The point's `fingerprint` (`whole`, when already computed), tagged with the chunk size when it
    is played in chunks. A complete point is reused either way (the same episodes, seeds and planner
    generators; only the batch sizes differ); unfinished chunks resume only at the same size."""
    whole = whole or fingerprint(config)
    return hashlib.sha256(f"{whole} chunk {chunk}".encode()).hexdigest() if chunked(config, chunk) else whole


def chunked(config: Config, chunk: int | None) -> bool:
    return chunk is not None and chunk < config.eval.episodes


def measure_in_chunks(
    config: Config, chunk: int, chunks: dict[str, dict[str, Any]], save: Callable[[], None]
) -> dict[str, Any]:
    """The point played `chunk` episodes at a time (`eval.first_episode`: each episode keeps its seed
    and planner generator); a finished chunk lands in `chunks` and is saved at once, and chunks
    already there are skipped. Returns the point over all its episodes."""
    total = config.eval.episodes
    for first in range(0, total, chunk):
        size = min(chunk, total - first)
        tag = f"episodes {first}-{first + size - 1}"
        if tag in chunks:
            continue
        part = copy.deepcopy(config)
        part.eval.first_episode, part.eval.episodes = first, size
        chunks[tag] = measure(part)
        save()
    return combined([chunks[tag] for tag in sorted(chunks, key=lambda t: int(t.split()[1].split("-")[0]))])


def combined(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Chunks of one point as one: successes and episodes summed, distance and ms episode-weighted."""
    n = sum(p["episodes"] for p in parts)
    successes = round(sum(p["success_rate"] * p["episodes"] for p in parts))
    distances = [p["mean_final_distance_cm"] for p in parts]
    return {
        "planner_label": parts[0]["planner_label"],
        "episodes": n,
        "success_rate": successes / n,
        "ci95": list(wilson_interval(successes, n)),
        "mean_final_distance_cm": None
        if None in distances
        else sum(d * p["episodes"] for d, p in zip(distances, parts, strict=True)) / n,
        "ms_per_action": sum(p["ms_per_action"] * p["episodes"] for p in parts) / n,
    }


def complete(point: dict[str, Any]) -> bool:
    """Measured to the end (or skipped), not a chunked point still in progress."""
    return "success_rate" in point or "skipped" in point


def measure(config: Config) -> dict[str, Any]:
    [row] = evaluate(config, progress="lines")
    return {
        "planner_label": row.planner,
        "episodes": row.episodes,
        "success_rate": row.success_rate,
        "ci95": [row.ci_low, row.ci_high],
        "mean_final_distance_cm": row.mean_final_distance_cm,
        "ms_per_action": row.ms_per_action,
    }


def stored_points(points_file: Path, results_json: Path) -> dict[str, dict[str, Any]]:
    """Points measured before, by key: the results JSON's (committed, so a fresh clone keeps them,
    unfinished chunked points included) and the local points file's (a killed study's), the latter
    winning."""
    stored: dict[str, dict[str, Any]] = {}

    def published(document: dict[str, Any]) -> list[dict[str, Any]]:
        return [*document["figures"].get("unfinished", []), *document["figures"]["points"]]

    for path, read in ((results_json, published), (points_file, dict.values)):
        if not path.is_file():
            continue
        try:
            entries = read(json.loads(path.read_text()))
            stored.update({point_key(p["task"], p["row"], p["planner"], p["budget"]): p for p in entries})
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError, argparse.ArgumentTypeError):
            raise UserError(
                f"{path}: not a `wm bench planners` points file (points with task, row, planner, budget "
                "and settings); move it away to start over"
            ) from None
    return stored


def still_valid(base: Config, point: dict[str, Any]) -> bool:
    """A stored, complete point outside this run's grid is kept if today's settings (with the chunk
    size it was played in) would reproduce it."""
    if not complete(point):
        return False
    try:
        config = point_config(base, point["task"], point["row"], point["planner"], budget(point["budget"]))
    except (UserError, argparse.ArgumentTypeError):
        return False
    return point.get("settings") == point_settings(config, point.get("chunk"))


def run_points(
    base: Config,
    args: argparse.Namespace,
    points_file: Path,
    publish: Callable[[list[dict], list[dict]], None],
) -> list[dict[str, Any]]:
    """Every (task, row, planner, budget) point, reusing stored points of equal settings; cheapest
    budget first across tasks and planners, and `publish` after each new point, so a study stopped
    after any point has a usable table and resumes (even from a fresh clone) where it stopped; in
    chunks, after each chunk, with the unfinished point as `publish`'s second argument.
    Stored points of other rows, planners or budgets with today's settings are kept in the result."""
    stored = stored_points(points_file, args.results_dir / f"{args.name}.json")
    grid = sorted(
        itertools.product(base.eval.tasks, args.rows, args.planners, args.budgets),
        key=lambda point: budget_cost(point[3]),
    )
    keys = {point_key(*point) for point in grid}
    kept = {key: p for key, p in stored.items() if key not in keys and still_valid(base, p)}
    done: dict[str, dict[str, Any]] = {}
    for task, row, planner, point_budget in grid:
        key = point_key(task, row, planner, point_budget)
        where = {"task": task, "row": row, "planner": planner, "budget": str(point_budget)}
        if row in SIMULATOR_ROWS and planner in NEEDS_GRADIENTS:
            done[key] = where | {"skipped": "needs a differentiable world model"}
            continue
        config = point_config(base, task, row, planner, point_budget)
        whole = fingerprint(config)  # hashes the weights' bytes: once per point
        entry = stored.get(key, {})
        reused = complete(entry) and entry.get("settings") == point_settings(
            config, entry.get("chunk"), whole
        )
        settings = point_settings(config, args.chunk, whole)
        if not reused and chunked(config, args.chunk):  # resume at the next unfinished chunk
            chunks = entry.get("chunks", {}) if entry.get("settings") == settings else {}
            stored[key] = where | {"settings": settings, "chunk": args.chunk, "chunks": chunks}

            def save(key: str = key) -> None:
                write_json_atomic(points_file, stored)
                publish(in_order([*done.values(), *kept.values()], args), [stored[key]])

            result = measure_in_chunks(config, args.chunk, chunks, save)
            stored[key] = where | result | {"settings": settings, "chunk": args.chunk, "chunks": chunks}
            write_json_atomic(points_file, stored)
        elif not reused:
            stored[key] = where | measure(config) | {"settings": settings}
            write_json_atomic(points_file, stored)
        done[key] = stored[key]
        say(
            f"[planners] {key}: success {done[key]['success_rate']:.0%}, "
            f"{done[key]['mean_final_distance_cm']:.1f} cm, {done[key]['ms_per_action']:,.0f} ms per action"
            + (" (reused)" if reused else "")
        )
        if not reused:
            publish(in_order([*done.values(), *kept.values()], args), [])
    return in_order([*done.values(), *kept.values()], args)


def in_order(points: list[dict[str, Any]], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Task, row, planner (as asked, others after), then budget, cheapest first."""
    tasks = list(dict.fromkeys([*args.tasks, *(p["task"] for p in points)]))
    planners = list(dict.fromkeys([*args.planners, *PLANNER_NAMES]))
    return sorted(
        points,
        key=lambda p: (
            tasks.index(p["task"]), ROWS.index(p["row"]), planners.index(p["planner"]),
            budget_cost(budget(p["budget"])),
        ),
    )  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, dict[str, Any]]:
    args = parse(argv)
    base = base_config(args)
    use_threads(base.run.num_threads)
    points_file = Path(base.run.root) / "bench" / f"{args.name}_points.json"
    say(
        f"[planners] points file {points_file}; points of the same settings in it or in "
        f"{args.results_dir / args.name}.json are reused"
    )
    points = run_points(
        base, args, points_file, lambda points, unfinished: publish(points, base, args, unfinished)
    )
    answers, markdown = publish(points, base, args)
    for panel in dict.fromkeys(f"{p['task'].split('/')[-1]} {p['row']}" for p in points):
        if panel not in answers:
            say(f"[planners] {panel}: the official cem {args.official} point is not measured yet")
            continue
        a = answers[panel]
        ref = a["official"]
        say(
            f"[planners] {panel}: official {ref['planner']} {ref['budget']} {ref['success_rate']:.0%} at "
            f"{ref['ms_per_action']:,.0f} ms; soonest to equal it: {a['planner']} {a['budget']}, "
            f"{a['success_rate']:.0%} at {a['ms_per_action']:,.0f} ms "
            f"({a['fraction_of_official_time']:.2f} of its time)"
        )
    print(markdown)
    return answers


def publish(
    points: list[dict[str, Any]],
    base: Config,
    args: argparse.Namespace,
    unfinished: list[dict[str, Any]] | None = None,
) -> tuple[dict[str, dict[str, Any]], str]:
    """The results JSON (points with their settings, so later runs reuse them; a point still in
    chunks under `unfinished`, so a fresh clone resumes it), plot and table."""
    answers = soonest(points, args.official)
    markdown = table(points, answers)
    # No plot before the first point lands (only an unfinished chunk to publish).
    png = plot(points, args.official, args.results_dir / f"{args.name}.png") if points else None
    config = {
        "preset": base.preset,
        "world_model": base.eval.world_model,
        "encoder": base.eval.encoder,
        "tasks": list(dict.fromkeys(p["task"] for p in points)),
        "subgoals": base.eval.subgoals,
        "rows": list(dict.fromkeys(p["row"] for p in points)),
        "planners": list(dict.fromkeys(p["planner"] for p in points)),
        "budgets": sorted({p["budget"] for p in points}, key=lambda b: budget_cost(budget(b))),
        "official": f"{OFFICIAL_PLANNER} {args.official} h{base.plan.horizon}",
        "horizon": base.plan.horizon,
        "episodes": args.episodes,
        "mpc_steps": base.eval.budget,
        "seed": base.run.seed,
        "threads": base.run.num_threads,
        "overrides": args.overrides,
        "plot": str(png) if png else None,
    }
    figures = {"points": points, "soonest": answers} | ({"unfinished": unfinished} if unfinished else {})
    write_timing_result(args.name, config, figures, args.results_dir)
    if not args.no_readme:
        update_page(markdown, args.name)
    return answers, markdown


if __name__ == "__main__":
    main()
