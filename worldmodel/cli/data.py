"""`wm collect` and `wm data info|check|import`: making and inspecting trajectory datasets.

Every later stage trains or evaluates on these files, so a user gets one place to make them (play
collection or import from robomimic / LeRobot) and to see that they are sound before hours of
training read them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.table import Table

from data.checks import contact_sheet, info, validate
from data.collect import collect
from data.importers import import_lerobot, import_robomimic
from envs.policies import play_fallback_note
from worldmodel.common.console import make_console
from worldmodel.common.errors import UserError
from worldmodel.config.schema import load_config

data_app = typer.Typer(help="Inspect, validate and import trajectory datasets.", no_args_is_help=True)
console = make_console()

OVERRIDES_HELP = "Config overrides as key=value, e.g. env=jepa_wm/Push-v0 episodes=200 workers=2 out=x.h5"


def collect_command(overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP)) -> None:
    """Collect reward-free play episodes in parallel into the HDF5 episode store.

    Keys (collect.*): envs (or env=ID for one), episodes, steps, policy (random | scripted | play;
    play on an env other than our arm is smooth random actions), workers, out, resume.
    Also split=train|heldout, seed=N, import=my_pkg.my_envs.
    A killed run loses no finished episode; rerun with resume=true to complete it.
    """
    config = load_config(overrides, section="collect")
    c, env = config.collect, config.env
    if c.policy == "oracle":
        raise UserError(
            "config key 'collect.policy': 'oracle' sees the evaluation goal; use random, scripted or play"
        )
    note = play_fallback_note(c.envs, c.policy)
    if note:
        console.print(note, markup=False, highlight=False)
    result = collect(
        c.envs,
        c.episodes,
        c.steps,
        c.policy,
        c.out,
        seed=config.run.seed,
        workers=c.workers,
        image_size=env.image_size,
        split=env.split,
        distractors=env.distractors,
        user_module=env.user_module,
        resume=c.resume,
        progress=sys.stderr.isatty() or sys.stdout.isatty(),
    )
    console.print(
        f"wrote {result.path}: {result.written} new episodes ({result.skipped} already there), "
        f"{result.frames} frames in {result.seconds:.1f} s = {result.frames_per_second:.0f} frames/s"
    )


@data_app.command("info")
def data_info(
    path: Path = typer.Argument(..., help="Dataset: an .h5 file or a directory of .h5 files."),
    preview: Path = typer.Option(None, "--preview", help="Also write a contact sheet of frames to this PNG."),
) -> None:
    """Summarise a dataset: episodes, steps, tasks, action/state ranges, size on disk."""
    summary = info(path)
    table = Table(title=f"dataset {path}", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    for key, value in summary.items():
        if key == "bytes_on_disk":
            value = f"{value / 1e6:.1f} MB"
        table.add_row(key, str(value))
    console.print(table)
    if preview is not None:
        console.print(f"wrote {contact_sheet(path, preview)}")


@data_app.command("check")
def data_check(
    path: Path = typer.Argument(..., help="Dataset: an .h5 file or a directory of .h5 files."),
) -> None:
    """Validate every episode; print one line per problem and exit 1 if there is any."""
    problems = validate(path)
    for line in problems:
        typer.echo(line, err=True)
    if problems:
        raise typer.Exit(1)
    console.print(f"{path}: ok")


@data_app.command("import")
def data_import(
    source: Path = typer.Argument(..., help="The robomimic .hdf5 file or the LeRobot dataset folder."),
    out: Path = typer.Argument(..., help="Output .h5 in the jepa-wm episode format."),
    fmt: str = typer.Option(..., "--format", help="Source format: robomimic or lerobot."),
    camera: str = typer.Option(None, help="Camera: robomimic name (default agentview) or LeRobot video key."),
    image_size: int = typer.Option(64, help="Square frame size after centre crop and resize (16..256)."),
) -> None:
    """Convert robomimic or LeRobot trajectories into the jepa-wm episode store."""
    if not 16 <= image_size <= 256:
        raise UserError(f"option --image-size: expected 16..256, got {image_size}")
    if fmt == "robomimic":
        count = import_robomimic(source, out, camera=camera or "agentview", image_size=image_size)
    elif fmt == "lerobot":
        count = import_lerobot(source, out, camera=camera, image_size=image_size)
    else:
        raise UserError(f"option --format: expected robomimic or lerobot, got '{fmt}'")
    console.print(f"wrote {out}: {count} episodes")
