"""`wm bench encoder_seeds`: the stage-1 comparison (ours vs MAE vs a random ViT) over training seeds.

One training seed decides nothing at this scale: two seeds of one recipe differ by more in probe R²
than the methods do (experiments §30). So every seed trains each encoder and probes it like
`wm probe`; the table gives per-seed figures, mean ± sd, and ours minus each baseline with its
standard error. Stages are reused when run again; writes benchmarks/results/encoder_seeds.json and
the table between the ENCODER-SEEDS markers of docs/results.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
from pathlib import Path

from benchmarks.common import StudyParser, replace_block, write_result
from worldmodel.common.threads import use_threads
from worldmodel.config.schema import Config, load_config
from worldmodel.evaluation.demo import collect_stage, pretrain_stage, run_stage, say
from worldmodel.evaluation.probe_run import probe_is_current, run_probe, write_probe
from worldmodel.models.baseline_encoders import export_baseline

ENCODERS = ("ours", "mae", "random")
NAMES = {"ours": "ours (V-JEPA + VC)", "mae": "MAE", "random": "random-init ViT"}
FIGURES = ("probe_r2_ee", "probe_r2_cube", "rank_corr_ee", "rank_corr_ee_near", "rank_corr_cube")
START, END = "<!-- ENCODER-SEEDS-TABLE:START -->", "<!-- ENCODER-SEEDS-TABLE:END -->"
PROBE_ENV = "jepa_wm/Push-v0"


def seed_list(text: str) -> list[int]:
    seeds = [s.strip() for s in text.split(",") if s.strip()]
    if not seeds or not all(s.isdigit() for s in seeds) or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"expected distinct integers >= 0 like 0,1,2, got {text!r}")
    return [int(s) for s in seeds]


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = StudyParser(
        prog="wm bench encoder_seeds", description=__doc__.split("\n\n")[0], allow_abbrev=False
    )
    parser.add_argument("--preset", default="tiny", help="preset of data and encoders (default tiny)")
    parser.add_argument(
        "--seeds", type=seed_list, default=[0, 1, 2, 3, 4], help="training seeds (default 0,1,2,3,4)"
    )
    parser.add_encoder_options(
        "MAE pretraining steps (default: the preset's, as ours; 435 matches tiny's wall time here)",
        "held-out Push episodes for the probe (default 100)",
    )
    parser.add_argument(
        "--root", default="runs/seeds", help="runs folder for the encoders and probes (default runs/seeds)"
    )
    parser.add_output_options(
        "encoder_seeds",
        "config overrides for every encoder, e.g. pretrain.lr=1e-3 (finished runs under --root are "
        "reused as they are, so give a new --root)",
    )
    return parser.parse_args(argv)


def run_name(base: Config, encoder: str, seed: int, mae_steps: int) -> str:
    """`tiny_s0`, `tiny_mae435_s0`: the MAE name carries its step count, as in the ablation."""
    if encoder == "mae":
        return f"{base.run.name}_mae{mae_steps}_s{seed}"
    if encoder == "random":
        return f"{base.run.name}_random_s{seed}"
    return f"{base.run.name}_s{seed}"


def pretrain_seconds(folder: Path) -> float | None:
    """Training wall time read off the run folder: config.yaml is written when training starts,
    encoder.safetensors when it ends (a resumed run counts from its last start)."""
    try:
        return (folder / "encoder.safetensors").stat().st_mtime - (folder / "config.yaml").stat().st_mtime
    except OSError:
        return None


def encoder_stage(base: Config, encoder: str, seed: int, mae_steps: int) -> Path:
    """Pretrain (ours, MAE) or export (random) one encoder; return its folder."""
    name = run_name(base, encoder, seed, mae_steps)
    folder = Path(base.run.root) / "pretrain" / name
    if encoder == "random":
        run_stage(
            f"{name}: export",
            (folder / "encoder.safetensors").exists,
            lambda: str(export_baseline("random", folder, base.jepa.encoder, seed=seed)),
        )
        return folder
    config = copy.deepcopy(base)
    config.run.name, config.run.seed = name, seed
    if encoder == "mae":
        config.pretrain.method, config.pretrain.max_steps = "mae", mae_steps
    _, folder = pretrain_stage(config, f"{name}: pretrain")
    return folder


def probe_stage(folder: Path, grid: int, episodes: int) -> dict:
    """The pooled probe row of one encoder (`probe_<N>ep.json` in its folder, reused if current)."""
    out = folder / f"probe_{episodes}ep.json"

    def do_probe() -> str:
        rows = run_probe([str(folder)], [grid], PROBE_ENV, episodes, 30, "heldout", cross_appearance=False)
        write_probe(rows, out)
        return f"R2 EE {rows[0]['probe_r2_ee']:.3f}, cube {rows[0]['probe_r2_cube']:.3f}"

    run_stage(f"{folder.name}: probe", lambda: probe_is_current(out), do_probe)
    return json.loads(out.read_text())[0]


def summarise(per_seed: dict[str, list[dict]]) -> dict[str, dict[str, float]]:
    """Mean and sd over seeds of every figure, and on how many seeds ours beats each baseline."""
    summary: dict[str, dict[str, float]] = {}
    for encoder, rows in per_seed.items():
        for key in (*FIGURES, "pretrain_seconds"):
            values = [r[key] for r in rows if r.get(key) is not None]
            if values:
                summary.setdefault(encoder, {})[f"{key} mean"] = statistics.fmean(values)
                summary[encoder][f"{key} sd"] = statistics.stdev(values) if len(values) > 1 else 0.0
    for baseline in ("mae", "random"):
        if baseline in per_seed and "ours" in per_seed:
            ours, other = per_seed["ours"], per_seed[baseline]
            for key in ("probe_r2_ee", "probe_r2_cube"):
                summary["ours"][f"{key} wins vs {baseline}"] = sum(
                    o[key] > b[key] for o, b in zip(ours, other, strict=True)
                )
                # Difference of the means and its standard error (unpaired: a seed is not shared
                # by the two methods' training in any way that pairs them).
                summary["ours"][f"{key} minus {baseline}"] = (
                    summary["ours"][f"{key} mean"] - summary[baseline][f"{key} mean"]
                )
                summary["ours"][f"{key} minus {baseline} se"] = math.sqrt(
                    (summary["ours"][f"{key} sd"] ** 2 + summary[baseline][f"{key} sd"] ** 2) / len(ours)
                )
    return summary


def table(per_seed: dict[str, list[dict]], summary: dict[str, dict[str, float]], seeds: list[int]) -> str:
    """Markdown: one row per encoder; R² EE / cube per seed, then mean ± sd of R² and rank corr."""
    head = ["encoder", *[f"seed {s} R² EE / cube" for s in seeds], "mean ± sd R² EE", "mean ± sd R² cube"]
    head += [
        "ours minus it, R² EE / cube (± se)",
        "rank corr EE / < 5 cm / cube (means)",
        "pretraining (mean)",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for encoder, rows in per_seed.items():
        s = summary[encoder]
        cells = [NAMES[encoder], *[f"{r['probe_r2_ee']:.3f} / {r['probe_r2_cube']:.3f}" for r in rows]]
        for key in ("probe_r2_ee", "probe_r2_cube"):
            cells.append(f"{s[f'{key} mean']:.3f} ± {s[f'{key} sd']:.3f}")
        ours = summary.get("ours", {})
        cells.append(
            " / ".join(
                f"{ours[f'{k} minus {encoder}']:+.3f} ± {ours[f'{k} minus {encoder} se']:.3f}"
                for k in FIGURES[:2]
            )
            if f"probe_r2_ee minus {encoder}" in ours
            else "-"
        )
        cells.append(" / ".join(f"{s[f'{k} mean']:.3f}" for k in FIGURES[2:]))
        seconds = s.get("pretrain_seconds mean")
        cells.append(f"{seconds:.0f} s" if seconds else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    args = parse(argv)
    base = load_config([f"preset={args.preset}", f"run.root={args.root}", *args.overrides])
    mae_steps = args.mae_steps or base.pretrain.max_steps
    use_threads(base.run.num_threads)
    collect_stage(base)
    per_seed: dict[str, list[dict]] = {name: [] for name in ENCODERS}
    for seed in args.seeds:
        for encoder in ENCODERS:
            folder = encoder_stage(base, encoder, seed, mae_steps)
            row = probe_stage(folder, base.eval.latent_grid, args.probe_episodes)
            seconds = pretrain_seconds(folder)  # None for an export: it writes no config.yaml
            per_seed[encoder].append(
                {k: row[k] for k in FIGURES} | {"seed": seed, "pretrain_seconds": seconds}
            )
            say(
                f"[encoder_seeds] {encoder} seed {seed}: R2 EE {row['probe_r2_ee']:.3f} cube {row['probe_r2_cube']:.3f}"
            )
    summary = summarise(per_seed)
    markdown = table(per_seed, summary, args.seeds)
    print(markdown)
    figures = {
        f"{encoder} {key}": value for encoder, values in summary.items() for key, value in values.items()
    }
    config = {
        "preset": args.preset,
        "seeds": args.seeds,
        "pretrain_steps": base.pretrain.max_steps,
        "mae_steps": mae_steps,
        "probe_episodes": args.probe_episodes,
        "grid": base.eval.latent_grid,
        "per_seed": per_seed,
    }
    write_result("encoder_seeds", config, figures, args.results_dir)
    if not args.no_readme:
        replace_block(markdown, START, END, "Stage-1 encoders over training seeds")
    return summary


if __name__ == "__main__":
    main()
