"""`wm import encoder|predictor`: released V-JEPA 2 / V-JEPA 2-AC weights as `wm` run folders.

The user downloads the files (nothing is fetched at run time); an import reads them without running
pickle code, memory-mapped, and writes a run folder the other commands take like one of ours:
`encoder=` for `wm cache` / `wm train` / `wm probe`, `world_model=` for `wm plan` / `wm eval`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from worldmodel.common.console import make_console
from worldmodel.models.ac_import import import_predictor
from worldmodel.models.encoder_import import import_encoder

import_app = typer.Typer(
    help="Turn released V-JEPA 2 / V-JEPA 2-AC weights (downloaded by you) into run folders.",
    no_args_is_help=True,
)
console = make_console()


def _say(text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


@import_app.command("encoder")
def import_encoder_command(
    checkpoint: Path = typer.Argument(
        ...,
        help="Official V-JEPA 2 .pt (vitl.pt, vith.pt, vitg.pt, vjepa2-ac-vitg.pt), or a Hugging Face "
        "V-JEPA 2 folder (config.json + model.safetensors) or one of its weight files.",
    ),
    out_dir: Path = typer.Argument(..., help="Run folder to write encoder.safetensors into."),
    img_size: int = typer.Option(
        0, "--img-size", help="Nominal frame size (0: 256 for official sizes, crop_size for Hugging Face)."
    ),
    key: str = typer.Option("", "--key", help="Checkpoint entry (default: target_encoder, else encoder)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing encoder.safetensors."),
) -> None:
    """A released V-JEPA 2 encoder -> a pretrain run folder for `encoder=`.

    encoder.safetensors records the size, image size, patch, tubelet, normalisation and weights
    hash. Frames are ImageNet-normalised and each is fed as a 2-frame tubelet, as officially."""
    result = import_encoder(checkpoint, out_dir, img_size=img_size or None, key=key or None, force=force)
    _say(result.summary())
    _say(f"use it: wm cache data=<episodes.h5> encoder={out_dir}  (then wm train with the same encoder=)")


@import_app.command("predictor")
def import_predictor_command(
    checkpoint: Path = typer.Argument(..., help="Official V-JEPA 2-AC checkpoint (vjepa2-ac-vitg.pt)."),
    out_dir: Path = typer.Argument(..., help="AC run folder to write predictor.safetensors into."),
    encoder: Path = typer.Option(
        ..., "--encoder", help="Its encoder, imported first: `wm import encoder vjepa2-ac-vitg.pt DIR`."
    ),
    img_size: int = typer.Option(
        0,
        "--img-size",
        help="Frame size it plans on: all its tokens (0: the encoder's, 256 = the official 16x16 grid; "
        "64 = the arm envs' frames, 4x4).",
    ),
    key: str = typer.Option("predictor", "--key", help="Checkpoint entry holding the predictor."),
    force: bool = typer.Option(False, "--force", help="Replace an existing predictor.safetensors."),
) -> None:
    """An official V-JEPA 2-AC predictor -> an AC run folder for `world_model=` (wm plan / wm eval).

    Convention, checked: 7-D end-effector delta actions [dx, dy, dz, droll, dpitch, dyaw, dgripper]
    and a 7-D state [x, y, z, roll, pitch, yaw, gripper], as the jepa_wm arm envs."""
    result = import_predictor(checkpoint, out_dir, encoder, key=key, img_size=img_size or None, force=force)
    _say(result.summary())
    side = result.image_size
    _say(f"plan with it: wm plan world_model={out_dir}  (on {side}x{side} frames)")
