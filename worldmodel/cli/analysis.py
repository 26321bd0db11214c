"""`wm energy` and `wm rollout-report`: looking inside a trained world model (runs/ac/<name>).

Both judge the model on held-out episodes, where a good-looking training loss can still hide a
predictor that ignores its actions; the logic lives in `worldmodel.evaluation`, this is the command
surface.
"""

from __future__ import annotations

from pathlib import Path

import torch
import typer

from data.episodes import EpisodeReader
from worldmodel.common.console import make_console
from worldmodel.common.devices import DEVICE_HELP, resolve_device
from worldmodel.common.errors import UserError
from worldmodel.config.schema import load_config
from worldmodel.config.user_envs import adopt_user_modules
from worldmodel.evaluation.energy_map import energy_map, save_heatmap
from worldmodel.evaluation.rollout_report import held_out_episodes, report_lines, rollout_report, write_report
from worldmodel.models.world_model import WorldModel

console = make_console()

RUN_HELP = "AC run folder (runs/ac/<name>) with predictor.safetensors."
DATA_HELP = "Dataset: an .h5 file or a directory of .h5 files."
IMPORT_HELP = "Import this module first (your envs; default: the one the run's config.yaml records)."


def _say(line: str) -> None:
    console.print(line, markup=False, highlight=False)


def _load(run: Path, threads: int, device: str, user_module: str = ""):
    """The run's world model on `device`, after importing the user's env modules (--import and the
    run's recorded `env.user_module`), as every command that reads a run does."""
    if threads < 1:
        raise UserError(f"option --threads: expected an integer >= 1, got {threads}")
    adopt_user_modules(load_config(), [run], given=user_module)
    torch.set_num_threads(threads)
    return WorldModel.from_run(run).eval().to(resolve_device(device))


def energy_command(
    run: Path = typer.Argument(..., help=RUN_HELP),
    data: Path = typer.Argument(..., help=DATA_HELP),
    episode: int = typer.Option(-1, help="Episode index (default: the first held-out episode)."),
    step: int = typer.Option(-1, help="Transition t -> t+1 of that episode (default: the middle one)."),
    grid: int = typer.Option(21, help="Candidates per axis (grid x grid actions)."),
    dims: str = typer.Option("0,1", help="The two action dims to sweep, comma separated (0,1 = dx,dy)."),
    out: Path = typer.Option(None, "--out", help="Heatmap PNG (default: <run>/energy_ep<E>_step<T>.png)."),
    threads: int = typer.Option(1, help="torch threads (1 is fastest when the cores are shared)."),
    device: str = typer.Option("auto", help=DEVICE_HELP),
    user_module: str = typer.Option("", "--import", help=IMPORT_HELP),
) -> None:
    """One-step energy over a grid of candidate actions for one held-out transition, as a heatmap.

    The energy is the mean L1 between the predicted and the true next-frame latent; the other
    action dims stay at the true action's. Prints where the argmin lies relative to the true action,
    beside the copy-last-frame baseline (flat energy: its argmin is chance).
    """
    try:
        sweep = tuple(int(d) for d in dims.split(","))
    except ValueError:
        raise UserError(f"option --dims: expected two comma-separated integers, got '{dims}'") from None
    if len(sweep) != 2:
        raise UserError(f"option --dims: expected two comma-separated integers, got '{dims}'")
    wm = _load(run, threads, device, user_module)
    reader = EpisodeReader(data)
    heldout, selection = held_out_episodes(reader, run)
    if episode < 0:
        episode = heldout[0]
        _say(f"episode {episode}: first held-out episode ({selection})")
    if step < 0 and 0 <= episode < len(reader):
        step = reader.num_steps(episode) // 2
    result = energy_map(wm, reader, episode, step, grid=grid, dims=sweep)  # type: ignore[arg-type]
    path = out or Path(run) / f"energy_ep{episode}_step{step}.png"
    save_heatmap(result, path)
    s = result.summary()
    (nx, ny), (tx, ty), (mx, my) = result.names, s["true_action"], s["argmin"]
    _say(
        f"transition: episode {episode}, step {step}; {grid}x{grid} candidates over {nx} "
        f"[{result.xs[0]:+.4g}, {result.xs[-1]:+.4g}], {ny} [{result.ys[0]:+.4g}, {result.ys[-1]:+.4g}] "
        f"(grid step {s['grid_step']:.4g})"
    )
    _say(f"true action:  ({nx}, {ny}) = ({tx:+.4f}, {ty:+.4f})  energy {s['true_energy']:.4f}")
    _say(f"argmin:       ({nx}, {ny}) = ({mx:+.4f}, {my:+.4f})  energy {s['argmin_energy']:.4f}")
    _say(
        f"learned model: argmin is {s['argmin_distance']:.4f} action units from the true action "
        f"({s['argmin_distance'] / max(s['grid_step'], 1e-12):.1f} grid steps); "
        f"{100 * s['lower_fraction']:.0f} % of candidates score lower than the true action"
    )
    _say(
        f"copy-last-frame: energy {s['copy_energy']:.4f} for every action (no argmin); a random candidate "
        f"is {s['chance_distance']:.4f} action units from the true action on average"
    )
    _say(f"wrote {path}")


def rollout_report_command(
    run: Path = typer.Argument(..., help=RUN_HELP),
    data: Path = typer.Argument(..., help=DATA_HELP),
    horizon: int = typer.Option(5, help="Largest rollout horizon H (reports 1..H)."),
    cache: Path = typer.Option(
        None, "--cache", help="Embedding cache to read (default: the run's, if it matches this dataset)."
    ),
    threads: int = typer.Option(1, help="torch threads (1 is fastest when the cores are shared)."),
    device: str = typer.Option("auto", help=DEVICE_HELP),
    user_module: str = typer.Option("", "--import", help=IMPORT_HELP),
) -> None:
    """Rollout L1 at horizons 1..H on held-out episodes: learned predictor vs copy-last-frame.

    Held out: episodes with split=heldout, else the last 20 % of episodes. Writes
    <run>/rollout_report.json.
    """
    wm = _load(run, threads, device, user_module)
    report = rollout_report(wm, run, data, horizon=horizon, cache=cache)
    for line in report_lines(report):
        _say(line)
    path = write_report(report, run)
    _say(f"wrote {path}")
