"""`wm plan`: one goal-image episode through the receding-horizon loop, with a video of it.

`plan_episode` (= `prepare_episode`, every check, then `run_episode`) runs one episode of
`eval.budget` MPC steps with the chosen row's world model (oracle | simulator | learned, as in
`wm eval`). A user's own goal image (roughly square, PNG/JPG) can replace the env's goal for
planning; the env still judges success and distance against its own goal. `write_video` renders
each step as `current frame | goal image | energy curve so far`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import imageio.v2 as imageio
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from envs.protocol import info_distance
from envs.registration import make_env
from planners import PlannerBase
from worldmodel.common.errors import UserError
from worldmodel.common.plots import writable_output
from worldmodel.config.schema import EVAL_ROWS, Config
from worldmodel.evaluation.mpc import run_mpc
from worldmodel.evaluation.rows import build_planner, build_world_model, env_kwargs_for

VIDEO_HEIGHT = 256  # camera and goal panels are upscaled to this many pixels
LABEL_HEIGHT = 32  # a strip above the panels with their names
PLOT_WIDTH = 384
# A goal picture whose aspect is further than this from the camera's is refused: centre-cropping
# it would plan towards a scene the user did not mean (a `wm envs show` figure, a wide photo).
MAX_GOAL_ASPECT = 1.25


@dataclass
class GoalImage:
    """A user's goal picture fitted to the env camera, and what was done to it, in words."""

    pixels: np.ndarray  # uint8 [H,W,3] at the env's image size
    fit: str  # e.g. "goal image 80x72 -> centre crop 72x72 -> resize 64x64"


@dataclass
class PlanEpisode:
    env_id: str
    seed: int
    row: str
    success: bool  # judged by the env against its own goal
    final_distance: float  # metres, the env's own task distance (NaN: the env gives none)
    steps_to_success: int | None
    ms_per_action: float
    frames: list[np.ndarray]  # observed frames, budget + 1
    goal: np.ndarray  # the goal image planning used
    energies: list[float]  # best planned energy per executed step (budget)
    distances: list[float]  # env distance after each executed step (budget)
    custom_goal: bool
    fps: float
    goal_is_env_goal: bool = True  # the planned-for image is exactly this episode's own goal
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class PlanSetup:
    """Everything checked and built before the first action: env facts, planner, world model, goal."""

    env_id: str
    seed: int
    row: str
    env_kwargs: dict[str, Any]
    fps: float
    planner: PlannerBase
    world_model: Any
    env_goal: np.ndarray  # the env's own goal image after reset(seed)
    goal: GoalImage | None  # the user's goal image, fitted; None = the env's goal
    subgoals: bool


def default_row(config: Config) -> str:
    return "learned" if config.eval.world_model else "simulator"


def load_goal_image(path: Path, size: int | tuple[int, int]) -> GoalImage:
    """Any roughly square image file -> RGB uint8 [H,W,3]: centre crop to the target aspect, then
    resize; a picture far from the target aspect (MAX_GOAL_ASPECT) is refused."""
    height, width = (size, size) if isinstance(size, int) else size
    path = Path(path)
    if not path.exists():
        raise UserError(f"goal image '{path}' does not exist")
    if not path.is_file():
        raise UserError(f"goal image '{path}' is not a file")
    try:
        with Image.open(path) as image:
            image.load()
            rgb = image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as err:
        reason = "not a readable image" if isinstance(err, UnidentifiedImageError) else str(err)
        raise UserError(f"goal image '{path}': cannot read it ({reason})") from None
    try:
        fitted, steps = fit_image(rgb, width, height, f"goal image '{path}'")
    except UserError as err:
        raise UserError(f"{err}, or write the env's own goal image with `wm envs goal`") from None
    size_line = f"goal image {rgb.size[0]}x{rgb.size[1]}"
    fit = " -> ".join([size_line, *steps]) if steps else f"{size_line}: used as is"
    return GoalImage(np.asarray(fitted, dtype=np.uint8).copy(), fit)


def fit_image(rgb: Image.Image, width: int, height: int, what: str) -> tuple[Image.Image, list[str]]:
    """`rgb` centre-cropped to the camera's aspect, then resized to width x height, and the steps
    taken (none: used as is); an image far from that aspect (MAX_GOAL_ASPECT) is refused."""
    w, h = rgb.size
    target = width / height
    mismatch = max(w / h, target) / min(w / h, target)
    if mismatch > MAX_GOAL_ASPECT:
        raise UserError(
            f"{what} is {w}x{h}: too far from the camera's {width}x{height} aspect to crop "
            f"(long/short side {mismatch:.2f} > {MAX_GOAL_ASPECT}); crop it yourself"
        )
    steps = []
    if w / h > target:  # too wide: crop the sides
        new_w = max(1, round(h * target))
        left = (w - new_w) // 2
        rgb = rgb.crop((left, 0, left + new_w, h))
    elif w / h < target:  # too tall: crop top and bottom
        new_h = max(1, round(w / target))
        top = (h - new_h) // 2
        rgb = rgb.crop((0, top, w, top + new_h))
    if rgb.size != (w, h):
        steps.append(f"centre crop {rgb.size[0]}x{rgb.size[1]}")
    if rgb.size != (width, height):
        shrinking = rgb.size[0] >= width
        rgb = rgb.resize((width, height), Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR)
        steps.append(f"resize {width}x{height}")
    return rgb, steps


def check_row(row: str, goal_image: Path | None) -> str:
    """A known row, and no custom goal image for the oracle (it plans on true positions)."""
    if row not in EVAL_ROWS:
        raise UserError(f"option --row: expected one of {', '.join(EVAL_ROWS)}, got '{row}'")
    if row == "oracle" and goal_image is not None:
        raise UserError(
            "--goal-image cannot be used with --row oracle (the oracle plans on true positions, "
            "not images); use --row simulator or learned"
        )
    return row


def prepare_episode(
    config: Config, env_id: str, seed: int, row: str | None = None, goal_image: Path | None = None
) -> PlanSetup:
    """Check the row and goal image and build the planner and world model, before any planning."""
    row = check_row(row or default_row(config), goal_image)
    env_kwargs = env_kwargs_for(env_id, config)
    probe = make_env(env_id, **env_kwargs)
    try:
        pixels_shape = tuple(probe.observation_space["pixels"].shape)
        fps = float(getattr(probe.unwrapped, "control_hz", 0) or probe.metadata.get("render_fps", 5) or 5)
        planner = build_planner(config, probe, row)
        action_space = probe.action_space
        _, info = probe.reset(seed=seed)
        env_goal = np.asarray(info["goal_pixels"]).copy()
    finally:
        probe.close()
    goal = load_goal_image(goal_image, pixels_shape[:2]) if goal_image is not None else None
    subgoals = env_id in config.eval.subgoals
    if goal is not None and subgoals:
        raise UserError(
            f"--goal-image: cannot be combined with eval.subgoals listing {env_id} (sub-goals are the env's own scenes)"
        )
    world_model = build_world_model(row, env_id, env_kwargs, config, action_space)
    return PlanSetup(env_id, seed, row, env_kwargs, fps, planner, world_model, env_goal, goal, subgoals)


def plan_episode(
    config: Config,
    env_id: str,
    seed: int,
    row: str | None = None,
    goal_image: Path | None = None,
    on_step: Callable[[int, float, float], None] | None = None,
) -> PlanEpisode:
    """One episode of `config.eval.budget` MPC steps; `on_step(step, energy, distance)` per action."""
    return run_episode(config, prepare_episode(config, env_id, seed, row, goal_image), on_step)


def run_episode(
    config: Config, setup: PlanSetup, on_step: Callable[[int, float, float], None] | None = None
) -> PlanEpisode:
    """Run a prepared episode through the MPC loop (see `plan_episode`)."""

    def report(episode: int, step: int, energy: float, info: dict) -> None:
        if on_step is not None:
            on_step(step, energy, info_distance(info))

    goal = None if setup.goal is None else setup.goal.pixels
    start = time.perf_counter()
    result = run_mpc(
        setup.env_id,
        setup.world_model,
        setup.planner,
        [setup.seed],
        config.eval.budget,
        setup.env_kwargs,
        execute=config.plan.execute,
        record=True,
        goal_pixels=goal,
        on_step=report,
        subgoals=setup.subgoals,
    )
    outcome = result.outcomes[0]
    if outcome.goal is None:  # the oracle plans on positions: show the env's goal image anyway
        outcome.goal = setup.env_goal
    # energies are per planning call; spread over the executed steps (plan.execute per call)
    per_step = [e for e in outcome.energies for _ in range(config.plan.execute)][: config.eval.budget]
    return PlanEpisode(
        env_id=setup.env_id,
        seed=setup.seed,
        row=setup.row,
        success=outcome.success,
        final_distance=outcome.final_distance,
        steps_to_success=outcome.steps_to_success,
        ms_per_action=result.ms_per_action,
        frames=outcome.frames,
        goal=outcome.goal,
        energies=per_step,
        distances=outcome.distances,
        custom_goal=goal is not None,
        fps=setup.fps,
        goal_is_env_goal=goal is None or np.array_equal(goal, setup.env_goal),
        extra={"wall_seconds": time.perf_counter() - start},
    )


# --------------------------------------------------------------------------------------- video


def _upscale(image: np.ndarray, height: int) -> np.ndarray:
    """Nearest-neighbour upscale (integer factor when possible) to `height` rows."""
    h, w = image.shape[:2]
    width = max(1, round(w * height / h))
    if height % h == 0 and width % w == 0:
        return np.repeat(np.repeat(image, height // h, axis=0), width // w, axis=1)
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.NEAREST))


def _label(panel: np.ndarray, text: str) -> np.ndarray:
    strip = Image.new("RGB", (panel.shape[1], LABEL_HEIGHT), (255, 255, 255))
    try:
        font = ImageFont.load_default(size=16)
    except TypeError:  # Pillow < 10.1: the small bitmap font
        font = ImageFont.load_default()
    ImageDraw.Draw(strip).text((6, 7), text, fill=(0, 0, 0), font=font)
    return np.concatenate([np.asarray(strip), panel], axis=0)


class _EnergyPlot:
    """One matplotlib figure redrawn per frame: the best planned energy up to the current step."""

    def __init__(self, energies: list[float], height: int, width: int = PLOT_WIDTH) -> None:
        self.energies = np.asarray(energies, dtype=float)
        dpi = 100
        self.fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
        self.canvas = FigureCanvasAgg(self.fig)
        ax = self.fig.add_subplot(1, 1, 1)
        steps = max(len(self.energies), 1)
        ax.set_xlim(0.5, steps + 0.5)
        finite = self.energies[np.isfinite(self.energies)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        pad = 0.08 * (high - low) if high > low else max(abs(high), 1.0) * 0.1
        ax.set_ylim(low - pad, high + pad)
        ax.set_xlabel("MPC step")
        ax.set_ylabel("best planned energy")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        (self.line,) = ax.plot([], [], "-o", color="C0", markersize=3)
        self.title = ax.set_title("step 0   env distance 00.0 cm", fontsize=9)  # sizes the layout
        self.fig.tight_layout()
        self.size = (height, width)

    def render(self, upto: int, caption: str) -> np.ndarray:
        xs = np.arange(1, upto + 1)
        self.line.set_data(xs, self.energies[:upto])
        self.title.set_text(caption)
        self.canvas.draw()
        image = np.asarray(self.canvas.buffer_rgba())[..., :3]
        return np.ascontiguousarray(image[: self.size[0], : self.size[1]])


def compose_frames(
    frames: list[np.ndarray],
    goal: np.ndarray,
    energies: list[float] | None,
    distances: list[float] | None = None,
    goal_label: str = "goal image",
    height: int = VIDEO_HEIGHT,
    steps: list[int] | None = None,
) -> list[np.ndarray]:
    """Video frames: `current camera frame | goal image | energy curve so far`, labelled.

    `energies=None` leaves out the energy curve (just `camera | goal`); `steps` are the MPC step
    numbers of `frames` when they are a subsample of the episode (default 0, 1, 2, ...).
    """
    goal_panel = _label(_upscale(np.asarray(goal, dtype=np.uint8), height), goal_label)
    plot = None if energies is None else _EnergyPlot(energies, height + LABEL_HEIGHT)
    out = []
    for i, frame in enumerate(frames):
        t = i if steps is None else steps[i]
        current = _label(_upscale(np.asarray(frame, dtype=np.uint8), height), f"camera, step {t}")
        panels = [current, goal_panel]
        if plot is not None:
            upto = min(t + 1, len(energies))  # the plan made from this frame
            caption = f"step {t}"
            if distances and t >= 1 and t - 1 < len(distances) and np.isfinite(distances[t - 1]):
                caption += f"   env distance {100 * distances[t - 1]:.1f} cm"
            panels.append(plot.render(upto, caption))
        out.append(np.concatenate(panels, axis=1))
    return out


def _temp_for(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{path.suffix}")


def write_video(
    frames: list[np.ndarray],
    goal: np.ndarray,
    energies: list[float],
    path: Path,
    fps: float = 5.0,
    gif: Path | None = None,
    distances: list[float] | None = None,
    goal_label: str = "goal image",
    steps: list[int] | None = None,
) -> list[Path]:
    """Write an MP4 (and optionally a GIF) of the episode via temp file + rename (`energies=None`:
    camera and goal only; `steps`: MPC step of each frame when `frames` is a subsample)."""
    video = compose_frames(frames, goal, energies, distances, goal_label, steps=steps)
    written = []
    targets = [(Path(path), "mp4")] + ([(Path(gif), "gif")] if gif is not None else [])
    for target, kind in targets:
        target = writable_output(target)
        tmp = _temp_for(target)
        try:
            if kind == "mp4":
                try:
                    _write_mp4(tmp, video, fps)
                except (ImportError, RuntimeError) as err:  # no ffmpeg on this machine
                    if gif is not None:
                        continue  # the GIF asked for beside it is written anyway
                    target = target.with_suffix(".gif")
                    print(f"{path}: no MP4 writer here ({first_line(err)}); writing {target} instead")
                    imageio.mimsave(tmp, video, format="GIF", duration=1000.0 / fps, loop=0)
            else:
                imageio.mimsave(tmp, video, format="GIF", duration=1000.0 / fps, loop=0)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        written.append(target)
    return written


def _write_mp4(path: Path, video: list[np.ndarray], fps: float) -> None:
    """H.264 through imageio's ffmpeg plugin (imageio-ffmpeg): ImportError or RuntimeError without it."""
    with imageio.get_writer(
        path, format="FFMPEG", mode="I", fps=fps, codec="libx264", macro_block_size=16,
        pixelformat="yuv420p", quality=8, ffmpeg_log_level="error",
    ) as writer:  # fmt: skip
        for image in video:
            writer.append_data(image)


def first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]
