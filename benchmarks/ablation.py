"""`wm bench ablation`: is latent prediction a better planning latent than the alternatives?

Same play data, predictor recipe, planner and budget for four latent spaces: our V-JEPA encoder,
MAE (same backbone and data), a random-init ViT and raw pixels; the last two are exported as
encoder files so they run through the very same cache, predictor and eval. Each gets the probe (on
the planner's latent and on the pooled encoder) and success per task. Stages are reused when run
again; writes benchmarks/results/ablation.json and the table between the ABLATION markers of docs/results.md.
"""

from __future__ import annotations

import argparse
import copy
import json
from functools import partial
from pathlib import Path

from benchmarks.common import RESULTS_PAGE, StudyParser, positive, replace_block, write_result
from worldmodel.common.errors import UserError
from worldmodel.common.threads import use_threads
from worldmodel.config.schema import Config, load_config
from worldmodel.evaluation.demo import StageResult, ac_stages, collect_stage, pretrain_stage, run_stage, say
from worldmodel.evaluation.evaluate import evaluate, write_outputs
from worldmodel.evaluation.probe_run import probe_is_current, run_probe, write_probe
from worldmodel.models.baseline_encoders import export_baseline

LATENTS = ("ours", "mae", "random", "pixels")
START, END = "<!-- ABLATION-TABLE:START -->", "<!-- ABLATION-TABLE:END -->"
PROBE_ENV = "jepa_wm/Push-v0"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = StudyParser(prog="wm bench ablation", description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--preset", default="tiny", help="preset of data, encoders, predictor, planner")
    parser.add_argument("--episodes", type=positive, default=10, help="held-out episodes per task and row")
    parser.add_argument("--tasks", default="jepa_wm/Reach-v0,jepa_wm/Push-v0", help="comma-separated env ids")
    parser.add_argument("--latents", default=",".join(LATENTS), help=f"subset of {','.join(LATENTS)}")
    parser.add_argument(
        "--rows", default="simulator,learned", help="eval rows: comma-separated simulator, learned"
    )
    parser.add_encoder_options(
        "MAE pretraining steps (default: the preset's, as ours)",
        "held-out Push episodes for the probe (its R² folds hold out whole episodes)",
    )
    parser.add_argument("--root", default="runs", help="runs folder (ours is runs/pretrain/<preset>)")
    parser.add_output_options(
        "ablation", "config overrides for every latent space, e.g. plan.samples=64 eval.budget=30"
    )
    return parser.parse_args(argv)


def encoder_stage(base: Config, latent: str, mae_steps: int | None) -> tuple[StageResult, Path]:
    """Our encoder is the preset's (the demo's); MAE is pretrained on the same data, for the same
    steps or `mae_steps` (its run name then says so)."""
    config = copy.deepcopy(base)
    if latent in ("pixels", "random"):
        folder = Path(base.run.root) / "ablation" / latent
        stage = run_stage(
            f"{latent}: encoder",
            (folder / "encoder.safetensors").exists,
            lambda: str(export_baseline(latent, folder, base.jepa.encoder, seed=base.run.seed)),
        )
        return stage, folder
    if latent == "mae":
        config.run.name = f"{base.run.name}_mae"
        config.pretrain.method = "mae"
        if mae_steps is not None and mae_steps != base.pretrain.max_steps:
            config.run.name += f"{mae_steps}"
            config.pretrain.max_steps = mae_steps
    return pretrain_stage(config, f"{latent}: pretrain")


def probe_stage(
    latent: str, planner_dir: Path, encoder_dir: Path, grid: int, episodes: int, out: Path
) -> StageResult:
    """Two rows: the planner's latent (the AC run's readout), then the encoder pooled to `grid`."""

    def do_probe() -> str:
        rows = run_probe([str(planner_dir), str(encoder_dir)], [grid], PROBE_ENV, episodes, 30, "heldout")
        write_probe(rows, out)
        return f"rank corr EE {rows[0]['rank_corr_ee']:.3f}, cube {rows[0]['rank_corr_cube']:.3f}"

    return run_stage(f"{latent}: probe", partial(probe_is_current, out), do_probe)


def eval_stage(
    config: Config, latent: str, planner_latent: Path, ac_dir: Path, rows: list[str], out_dir: Path
) -> StageResult:
    config.eval.encoder = str(planner_latent)
    config.eval.world_model = str(ac_dir)
    config.eval.rows = rows

    def do_eval() -> str:
        write_outputs(config, evaluate(config), out_dir)
        return str(out_dir / "results.json")

    return run_stage(f"{latent}: eval", (out_dir / "results.json").exists, do_eval)


PROBE_KEYS = ("rank_corr_ee", "rank_corr_ee_near", "rank_corr_cube", "probe_r2_ee", "probe_r2_cube")


def run_latent(base: Config, latent: str, args: argparse.Namespace) -> dict:
    """Every stage for one latent space; returns its probe and success figures."""
    folder = Path(base.run.root) / "ablation" / latent
    stage, encoder_dir = encoder_stage(base, latent, args.mae_steps)
    config = copy.deepcopy(base)
    config.run.name = f"ablation_{latent}"
    config.train.cache = str(folder / "embeddings.h5")
    ac_stages(config, encoder_dir, prefix=f"{latent}: ")
    ac_dir = Path(base.run.root) / "ac" / config.run.name
    # Named by its episode count; earlier versions wrote probe.json (the pooled row only) and
    # probe_latents.json (R² on a frame split).
    probe_json = folder / f"probe_{args.probe_episodes}ep.json"
    probe_stage(latent, ac_dir, encoder_dir, base.eval.latent_grid, args.probe_episodes, probe_json)
    rows = args.rows.split(",")
    eval_dir = folder / f"eval_{'_'.join(rows)}"
    # As in the demo: the simulator row scores the planner's own latent (keypoints read by the AC
    # run), or the encoder pooled to eval.latent_grid when the readout is pooling.
    planner_latent = ac_dir if base.readout.kind == "keypoints" else encoder_dir
    eval_stage(config, latent, planner_latent, ac_dir, rows, eval_dir)
    planner, pooled = json.loads(probe_json.read_text())
    results = json.loads((eval_dir / "results.json").read_text())["results"]
    return {
        "encoder": str(encoder_dir),
        "tokens": planner["tokens"],
        "probe": {k: planner[k] for k in PROBE_KEYS} | {"cross_error_cm_ee": planner["cross_error_cm_ee"]},
        "pooled_probe": {k: pooled[k] for k in PROBE_KEYS},
        "success": {
            f"{r['task'].split('/')[-1]} {r['row']}": {
                "success_rate": r["success_rate"],
                "ci95": [r["ci_low"], r["ci_high"]],
                "mean_final_distance_cm": r["mean_final_distance_cm"],
                "episodes": r["episodes"],
            }
            for r in results
        },
    }


NAMES = {"ours": "ours (V-JEPA)", "mae": "MAE", "random": "random-init ViT", "pixels": "raw pixels"}


def table(results: dict[str, dict], tasks: list[str], rows: list[str]) -> str:
    """Markdown: one row per latent space. Probe columns are the planner's latent, then R² of the
    encoder's pooled tokens; success cells are `rate [95 % interval] (final distance)`."""
    cols = [f"{t.split('/')[-1]} {row}" for t in tasks for row in rows]
    head = [
        "latent", "tokens", "rank corr EE", "EE < 5 cm", "rank corr cube", "R² EE / cube",
        "cross-appearance EE error", "pooled encoder R² EE / cube", *cols,
    ]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for latent, r in results.items():
        p, q = r["probe"], r["pooled_probe"]
        cells = [NAMES.get(latent, latent), str(r["tokens"])]
        cells += [f"{p[k]:.3f}" for k in ("rank_corr_ee", "rank_corr_ee_near", "rank_corr_cube")]
        cells += [f"{p['probe_r2_ee']:.3f} / {p['probe_r2_cube']:.3f}", f"{p['cross_error_cm_ee']:.1f} cm"]
        cells.append(f"{q['probe_r2_ee']:.3f} / {q['probe_r2_cube']:.3f}")
        for col in cols:
            s = r["success"].get(col)
            if s is None:
                cells.append("-")
                continue
            low, high = s["ci95"]
            cells.append(
                f"{s['success_rate']:.0%} [{low:.0%}, {high:.0%}] ({s['mean_final_distance_cm']:.1f} cm)"
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def update_page(markdown: str, page: Path = RESULTS_PAGE) -> None:
    replace_block(markdown, START, END, "Ablation: four latent spaces", page)


def main(argv: list[str] | None = None) -> dict[str, dict]:
    args = parse(argv)
    latents = [name for name in args.latents.split(",") if name]
    unknown = sorted(set(latents) - set(LATENTS))
    if unknown:
        raise UserError(
            f"wm bench ablation: --latents: expected names from {','.join(LATENTS)}, got {unknown[0]!r}"
        )
    rows = [name for name in args.rows.split(",") if name]
    if not rows or set(rows) - {"simulator", "learned"}:
        raise UserError(
            f"wm bench ablation: --rows: expected names from simulator,learned, got {args.rows!r}"
        )
    args.rows = ",".join(rows)
    # The encoders' own latents are compared: the frame terms (the object found by colour, the pixel
    # state) read the frames whatever the encoder, so they stay out unless an override asks for them.
    frame_terms = ["readout.object_weight=0", "readout.state_weight=0"]
    base = load_config([f"preset={args.preset}", f"run.root={args.root}", *frame_terms, *args.overrides])
    base.eval.tasks = [t for t in args.tasks.split(",") if t]
    base.eval.episodes = args.episodes
    use_threads(base.run.num_threads)
    collect_stage(base)
    results = {}
    for latent in latents:
        results[latent] = run_latent(base, latent, args)
        say(f"[ablation] {latent}: {json.dumps(results[latent]['success'])}")
    markdown = table(results, base.eval.tasks, rows)
    print(markdown)
    figures = {
        f"{latent} {key}": value["success_rate"] if isinstance(value, dict) else value
        for latent, r in results.items()
        for key, value in {
            **r["probe"],
            **{f"pooled {k}": v for k, v in r["pooled_probe"].items()},
            **r["success"],
        }.items()
    }
    config = {
        "preset": args.preset,
        "episodes": args.episodes,
        "tasks": base.eval.tasks,
        "latents": latents,
        "rows": rows,
        "mae_steps": args.mae_steps or base.pretrain.max_steps,
        "probe_episodes": args.probe_episodes,
    }
    write_result("ablation", config, figures, args.results_dir)
    if not args.no_readme:
        update_page(markdown)
    return results


if __name__ == "__main__":
    main()
