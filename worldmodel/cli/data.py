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
from data.importers.robomimic import DEFAULT_CAMERA, DEFAULT_STATE_KEYS
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
        table.add_row(key, "n/a" if value is None else str(value))  # e.g. no success labels
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
    camera: str = typer.Option(
        None,
        help="robomimic: the obs key of the images (default agentview_image). LeRobot: a video or "
        "image feature of meta/info.json (default: the only one; with several, the error lists them).",
    ),
    state_keys: str = typer.Option(
        None,
        "--state-keys",
        help="robomimic only: comma-separated obs keys making the state (default "
        "robot0_eef_pos,robot0_eef_quat,robot0_gripper_qpos). *_quat becomes Euler xyz, a two-finger "
        "*gripper_qpos one opening in [0,1] = (q_left - q_right) / 0.08 (robosuite's Panda); others as is.",
    ),
    control_hz: float = typer.Option(
        None,
        "--control-hz",
        help="Control rate in Hz. Default: robomimic env_args' env_kwargs.control_freq; LeRobot info.json's fps.",
    ),
    image_size: int = typer.Option(64, help="Square frame size after centre crop and resize (16..256)."),
) -> None:
    """Convert robomimic or LeRobot trajectories into the jepa-wm episode store.

    robomimic reads data/demo_N/obs/<camera>, obs/<state keys>, actions, next_obs (the last frame)
    and data's env_args (env_name, env_kwargs.control_freq).
    LeRobot reads a local v2.1 or v3.0 folder: meta/, columns observation.state and action, the camera
    as a video (AV1, H.264, ...) or as images in the parquet; robot_type null becomes env_id "unknown".
    It needs pyarrow and av (pip install 'jepa-wm\\[lerobot]'), not the lerobot package.
    """
    if not 16 <= image_size <= 256:
        raise UserError(f"option --image-size: expected 16..256, got {image_size}")
    if control_hz is not None and not control_hz > 0:
        raise UserError(f"option --control-hz: expected a positive rate, got {control_hz}")
    if fmt == "robomimic":
        keys = state_keys.split(",") if state_keys is not None else DEFAULT_STATE_KEYS
        count = import_robomimic(
            source,
            out,
            camera=camera or DEFAULT_CAMERA,
            image_size=image_size,
            state_keys=keys,
            control_hz=control_hz,
        )
    elif fmt == "lerobot":
        if state_keys is not None:
            raise UserError(
                "option --state-keys: only for --format robomimic (LeRobot reads observation.state)"
            )
        count = import_lerobot(source, out, camera=camera, image_size=image_size, control_hz=control_hz)
    else:
        raise UserError(f"option --format: expected robomimic or lerobot, got '{fmt}'")
    console.print(f"wrote {out}: {count} episodes")
