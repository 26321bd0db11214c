"""`wm`: the one command for everything a user does.

Every subcommand takes `key=value` config overrides (see `wm config show`). Bad input is reported
as one line on stderr with exit code 2; `--debug` (anywhere on the line) shows the traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch
import typer
from PIL import Image
from rich.table import Table

from benchmarks.run_all import BENCHMARKS, STUDIES, run, update_readme
from envs.registration import has_splits, list_tasks, render_goal, render_preview, require_registered
from worldmodel.cli.analysis import energy_command, rollout_report_command
from worldmodel.cli.data import collect_command, data_app
from worldmodel.cli.envs_check import envs_check_command
from worldmodel.cli.plan import eval_command, load_evaluation_config, plan_command
from worldmodel.cli.weights import import_app
from worldmodel.common.console import make_console
from worldmodel.common.devices import DEVICE_HELP, resolve_device
from worldmodel.common.errors import UserError
from worldmodel.common.plots import save_side_by_side, writable_output
from worldmodel.common.threads import use_threads
from worldmodel.config.schema import SPLITS, Config, load_config, to_yaml
from worldmodel.config.user_envs import adopt_user_modules
from worldmodel.evaluation.demo import run_demo
from worldmodel.evaluation.probe_run import run_probe, state_reference_line, write_probe
from worldmodel.evaluation.rows import env_kwargs_for
from worldmodel.models.baseline_encoders import export_baseline
from worldmodel.training.ac_train import train
from worldmodel.training.embedding_cache import build_cache
from worldmodel.training.pretrain import pretrain

app = typer.Typer(
    name="wm",
    help="jepa-wm: V-JEPA-style world models for goal-image robot planning on a CPU.\n\n"
    "Config overrides are key=value words after the command (see `wm config show`). "
    "Add --debug anywhere to see a traceback instead of the one-line error.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Inspect the resolved configuration.", no_args_is_help=True)
envs_app = typer.Typer(help="List and look at the goal-image environments.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(envs_app, name="envs")
envs_app.command("check")(envs_check_command)
app.add_typer(data_app, name="data")
app.add_typer(import_app, name="import")
app.command("collect")(collect_command)
app.command("energy")(energy_command)
app.command("rollout-report")(rollout_report_command)

console = make_console()
err_console = make_console(stderr=True)

OVERRIDES_HELP = "Config overrides as key=value (e.g. run.seed=1 env.split=heldout preset=small)."


@config_app.command("show")
def config_show(
    preset: str = typer.Argument("tiny", help="Preset name in configs/ or a path to a YAML file."),
    overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
) -> None:
    """Print the fully resolved config: defaults, then the preset, then your overrides."""
    if "=" in preset:  # no preset given, only overrides
        overrides, preset = [preset, *(overrides or [])], "tiny"
    console.print(to_yaml(load_config(overrides, preset=preset)), end="", markup=False, highlight=False)


ENVS_OVERRIDES_HELP = "Config overrides as key=value (e.g. import=my_pkg.my_envs split=heldout)."


def import_user_envs(user_module: str, config: Config) -> None:
    """Import the modules that register the user's envs (--import and import=)."""
    adopt_user_modules(config, given=user_module)


@envs_app.command("list")
def envs_list(
    overrides: list[str] = typer.Argument(None, help=ENVS_OVERRIDES_HELP),
    user_module: str = typer.Option("", "--import", help="Also import this module (registers your envs)."),
) -> None:
    """Table of the registered goal-image tasks."""
    import_user_envs(user_module, load_config(overrides))
    table = Table(title="jepa-wm goal-image tasks")
    rows = list_tasks()
    for column in rows[0]:
        table.add_column(str(column), no_wrap=column == "id")
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    console.print(table)


@envs_app.command("show")
def envs_show(
    env_id: str = typer.Argument(..., help="Gymnasium id, e.g. jepa_wm/PickPlace-v0."),
    overrides: list[str] = typer.Argument(None, help=ENVS_OVERRIDES_HELP),
    out: Path = typer.Option(..., "--out", help="PNG to write: first observation beside the goal image."),
    seed: int = typer.Option(None, help="Reset seed (scene and goal; default: run.seed, i.e. seed=)."),
    size: int = typer.Option(256, help="Image size in pixels (16..256)."),
    split: str = typer.Option("", help="Visual-variation split: train or heldout (default: env.split)."),
    user_module: str = typer.Option("", "--import", help="Import this module first (registers your envs)."),
) -> None:
    """Render a task's first observation and its goal image side by side (a figure to look at;
    `wm envs goal` writes the goal image `wm plan --goal-image` takes)."""
    config = load_config(overrides)
    import_user_envs(user_module, config)
    seed = config.run.seed if seed is None else seed
    split = split or config.env.split
    image = render_preview(env_id, seed=seed, image_size=size, split=split)
    half = image.shape[1] // 2
    save_side_by_side(
        [image[:, :half], image[:, half:]],
        ["first observation", "goal image"],
        title=f"{env_id}  (seed {seed}, split {split})",
        path=out,
    )
    console.print(
        f"wrote {out}: {env_id} seed {seed}, split {split}, first observation | goal image "
        f"(`wm plan` plans on the {config.eval.split} split; `wm envs goal` writes a goal image for it)",
        markup=False,
        highlight=False,
    )


@envs_app.command("goal")
def envs_goal(
    env_id: str = typer.Argument(..., help="Gymnasium id, e.g. jepa_wm/Reach-v0 (as `wm plan --env`)."),
    overrides: list[str] = typer.Argument(None, help=ENVS_OVERRIDES_HELP),
    out: Path = typer.Option(..., "--out", help="PNG to write: the goal image, lossless, at the env's size."),
    seed: int = typer.Option(None, help="Reset seed (default: run.seed, as `wm plan --seed`)."),
    split: str = typer.Option(
        "", help="Visual-variation split (default: eval.split, the one `wm plan` plans on)."
    ),
    user_module: str = typer.Option("", "--import", help="Import this module first (registers your envs)."),
) -> None:
    """Write the goal image the env gives after reset(seed), exactly as `wm plan --seed` plans
    towards it: same split, same image size, as a lossless PNG for `wm plan --goal-image`."""
    if split and split not in SPLITS:
        raise UserError(f"option --split: expected {' or '.join(SPLITS)}, got '{split}'")
    config = load_evaluation_config([*(overrides or []), *([f"eval.split={split}"] if split else [])])
    import_user_envs(user_module, config)
    if out.suffix.lower() != ".png":
        raise UserError(
            f"option --out: expected a .png file (the goal image is written losslessly), got '{out}'"
        )
    seed = config.run.seed if seed is None else seed
    env_kwargs = env_kwargs_for(env_id, config)  # what `wm plan` makes the env with
    goal = render_goal(env_id, seed, **env_kwargs)
    write_png(goal, out)
    height, width = goal.shape[:2]
    console.print(
        f"wrote {out}: goal image of {env_id}, seed {seed}, split {env_kwargs.get('split', '-')}, "
        f"{width}x{height} (wm plan --env {env_id} --seed {seed} --goal-image {out})",
        markup=False,
        highlight=False,
    )


def write_png(image: np.ndarray, path: Path) -> Path:
    """A lossless PNG of a uint8 [H,W,3] image, via a temp file and rename."""
    path = writable_output(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    try:
        Image.fromarray(image).save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


@app.command("pretrain")
def pretrain_command(overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP)) -> None:
    """Stage 1: action-free V-JEPA pretraining of the video encoder on collected clips.

    Keys (pretrain.*): data, max_steps, batch_size, clip_len, lr, warmup_steps, schedule, resume,
    method (jepa | mae: the pixel-reconstruction baseline), min_target_std (collapse guard, 0 = off);
    model: jepa.encoder.*, jepa.predictor.*, jepa.masks.*, jepa.ema_start/ema_end; mae.decoder.*.
    Writes runs/pretrain/<run.name>/ (config.yaml, metrics.csv, checkpoints/, encoder.safetensors).
    Run one training at a time: two on 2 cores each run 7-8x slower, not 2x (a warning says so).
    """
    config = load_config(overrides, section="pretrain")
    adopt_user_modules(config, datasets=[config.pretrain.data], load=False)  # recorded in the dataset
    use_threads(config.run.num_threads)
    path = pretrain(config)
    console.print(f"encoder: {path / 'encoder.safetensors'}  metrics: {path / 'metrics.csv'}")


@app.command("baseline")
def baseline_command(
    kind: str = typer.Argument(..., help="pixels (raw 8x8 patches) | random (our ViT, random init)."),
    out: Path = typer.Option(..., "--out", help="Folder to write encoder.safetensors into."),
    overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
) -> None:
    """Export a baseline latent space as an encoder file, so `wm cache`, `wm train` and `wm eval`
    run it exactly like a pretrained encoder (the ablation does this for pixels and random)."""
    config = load_config(overrides)
    path = export_baseline(kind, out, config.jepa.encoder, seed=config.run.seed)
    console.print(f"encoder: {path}")


@app.command("probe")
def probe_command(
    encoder: str = typer.Argument(
        ...,
        help="Pretrain run folder or encoder.safetensors, an AC run folder (its planner latent: "
        "pooling or keypoint readout), or 'pixels'/'random'.",
    ),
    grids: str = typer.Option("1,2,4", help="Token grids to pool to, comma separated (planner uses one)."),
    env_id: str = typer.Option("jepa_wm/Push-v0", "--env", help="Env whose frames are probed."),
    episodes: int = typer.Option(30, help="Play episodes of probe frames."),
    steps: int = typer.Option(30, help="Steps per episode."),
    split: str = typer.Option("heldout", help="Visual split of the probe frames."),
    baselines: bool = typer.Option(True, help="Also measure raw pixels and a random-init ViT."),
    device: str = typer.Option("auto", help=DEVICE_HELP),
    user_module: str = typer.Option("", "--import", help="Import this module first (registers your envs)."),
) -> None:
    """Does the latent track the task? Rank correlation of latent vs true distance, and linear probes.

    Rank correlations use pairs of frames of one episode (one appearance, as frame and goal). The
    probe R2 is a 5-fold ridge probe whose folds hold out whole episodes (frames of one episode
    share colours and cube position, so a frame split would score recognising the episode; take
    --episodes 100 for a cube R2 worth comparing). The cross-appearance probe fits on the other
    visual split and reports the end-effector error in cm on this one (what new appearances do to
    a probe; predicting the mean gives about 20 cm here)."""
    if episodes < 2 or steps < 1:
        raise UserError(
            f"options --episodes / --steps: expected >= 2 episodes (the probe's R2 folds hold out whole "
            f"episodes) and >= 1 step, got {episodes} / {steps}"
        )
    adopt_user_modules(load_config(), [encoder], given=user_module)
    require_probe_env(env_id)
    torch.set_num_threads(1)
    names = [encoder] + (["pixels", "random"] if baselines and encoder not in ("pixels", "random") else [])
    try:
        grid_list = [int(g) for g in grids.split(",")]
    except ValueError:
        raise UserError(f"option --grids: expected comma-separated integers, got '{grids}'") from None
    rows = run_probe(names, grid_list, env_id, episodes, steps, split, device=resolve_device(device))
    table = Table(title=f"latent vs truth on {env_id} ({split}, {episodes * steps} frames)")
    for column in (
        "encoder",
        "tokens",
        "rank corr EE",
        "EE <5cm",
        "rank corr cube",
        "probe R2 EE",
        "probe R2 cube",
        "cross EE cm",
        "token std",
        "pooled cos",
    ):
        table.add_column(column)
    for r in rows:
        table.add_row(
            Path(r["encoder"]).name if "/" in r["encoder"] else r["encoder"], str(r["tokens"]),
            f"{r['rank_corr_ee']:.3f}", f"{r['rank_corr_ee_near']:.3f}", f"{r['rank_corr_cube']:.3f}",
            f"{r['probe_r2_ee']:.3f}",
            f"{r['probe_r2_cube']:.3f}", f"{r['cross_error_cm_ee']:.1f}", f"{r['token_std']:.3f}",
            f"{r['pooled_cosine']:.3f}",
        )  # fmt: skip
    console.print(table)
    console.print(state_reference_line(env_id, episodes, steps, split))
    where = Path(encoder) if Path(encoder).is_dir() else Path("runs") / "probe"
    console.print(f"wrote {write_probe(rows, where / 'probe.json')}")


def require_probe_env(env_id: str) -> None:
    """The probe scores latents against true hand and cube positions: only our arm envs have them."""
    require_registered(env_id)
    if not has_splits(env_id):
        raise UserError(
            f"option --env: the probe reads the true hand and cube positions of a jepa_wm arm env, "
            f"which '{env_id}' does not expose; use `wm eval rows=[random,learned]` on your env"
        )


@app.command("cache")
def cache_command(overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP)) -> None:
    """Encode every frame of a dataset once with the frozen encoder (stage 2 reads this cache).

    Keys (train.*): data, encoder (pretrain run folder), cache (output; default <data>.embeddings.h5),
    resume (continue a killed run: encode only the episodes missing from <cache>.parts/);
    ac.grid_h sets the pooled token grid. A cache from another encoder or pooling is refused later.
    """
    config = load_config(overrides, section="train")
    use_threads(config.run.num_threads)
    console.print(f"wrote {build_cache(config, progress=sys.stderr.isatty())}")


@app.command("train")
def train_command(overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP)) -> None:
    """Stage 2: train the action-conditioned predictor on cached latents (encoder frozen).

    Keys (train.*): data, encoder, cache, clip_len, batch_size, max_steps, lr, auto_steps, resume,
    loss_exp (1 = L1, 2 = squared), state_update (auto | compose | add | hold), from_cache
    (false = encode frames on the fly), color_jitter (needs from_cache=false), ensemble (K
    predictors with seeds run.seed + k, members 1.. in <run>/member<k>/; plan with
    plan.disagreement_weight > 0 to keep plans where they agree);
    model: ac.width, ac.depth, ac.num_heads, ac.grid_h/grid_w, ac.predict_delta;
    planner latent (readout.kind=keypoints): readout.object_weight (the object found by colour),
    readout.state_weight + readout.state_dims (the hand and gripper estimated from the image; e.g.
    4 and [0,1,2,6]), readout.state_source (tokens | pixels: a small CNN on the frames, ~3 cm).
    Writes runs/ac/<run.name>/.
    """
    config = load_config(overrides, section="train")
    # recorded in the encoder run's config.yaml or in the dataset
    adopt_user_modules(config, [config.train.encoder], load=False, datasets=[config.train.data])
    use_threads(config.run.num_threads)
    path = train(config)
    members = (
        f" (+ {config.train.ensemble - 1} members in {path}/member*/)" if config.train.ensemble > 1 else ""
    )
    console.print(f"predictor: {path / 'predictor.safetensors'}{members}  metrics: {path / 'metrics.csv'}")


app.command("eval")(eval_command)  # worldmodel/cli/plan.py
app.command("plan")(plan_command)


@app.command("bench", context_settings={"ignore_unknown_options": True})
def bench_command(
    names: list[str] = typer.Argument(
        None,
        help="Benchmarks to run (default: all but the long studies). `wm bench ablation` runs the "
        "four-latent ablation, `wm bench encoder_seeds` the stage-1 encoders over training seeds, "
        "`wm bench planners` success against ms per action for every planner and budget "
        "(options after the name, e.g. --episodes 10 plan.samples=64; -h lists them).",
    ),
) -> None:
    """Run the benchmarks (results in benchmarks/results/*.json) and refresh the README and docs/results.md tables."""
    names = list(names or [])
    if names[:1] and names[0] in STUDIES:  # the long studies take their own options
        STUDIES[names[0]](names[1:])
        return
    known = (*BENCHMARKS, *STUDIES)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UserError(f"wm bench: unknown benchmark '{unknown[0]}': expected one of {', '.join(known)}")
    run(tuple(names or BENCHMARKS))
    update_readme()


@app.command("demo")
def demo(overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP)) -> None:
    """Run the whole pipeline on the tiny preset and print stage and success tables.

    Finished stages are reused when run again. Outputs: the dataset in collect.out, pictures and
    reports under runs/demo/<run.name>/. With `import=my_pkg.my_envs collect.envs=[ID]
    eval.tasks=[ID]` it runs on your env (eval rows for any env: random, learned, shooting).
    """
    config = load_config(overrides)
    import_user_envs("", config)
    use_threads(config.run.num_threads)
    run_demo(config)


def _strip_debug(argv: list[str]) -> tuple[list[str], bool]:
    debug = "--debug" in argv
    return [a for a in argv if a != "--debug"], debug


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app and turn user errors into one line + exit 2."""
    args, debug = _strip_debug(list(sys.argv[1:] if argv is None else argv))
    try:
        app(args=args, prog_name="wm")
    except (
        UserError,
        ValueError,
        FileNotFoundError,
        FileExistsError,
        PermissionError,
        IsADirectoryError,
        NotADirectoryError,
    ) as err:
        if debug:
            raise
        err_console.print(f"error: {err}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted", markup=False)
        sys.exit(130)
    except Exception as err:  # a bug, not bad input: say so in one line, traceback with --debug
        if debug:
            raise
        err_console.print(
            f"internal error: {type(err).__name__}: {err} (rerun with --debug for the traceback)",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
