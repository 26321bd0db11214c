"""`wm plan` end to end on the real env: per-step lines, an MP4 (and GIF) of camera | goal | energy."""

from __future__ import annotations

import imageio.v2 as imageio
import numpy as np
import pytest
from PIL import Image

from worldmodel.common.errors import UserError
from worldmodel.evaluation.plan_run import load_goal_image

TINY_PLAN = [
    "eval.budget=3",
    "plan.samples=8",
    "plan.iterations=1",
    "eval.sim_samples=4",
    "eval.sim_iterations=1",
    "eval.encoder=pixels",
]


def read_frames(path) -> list[np.ndarray]:
    with imageio.get_reader(path) as reader:
        return [np.asarray(frame) for frame in reader]


def test_plan_writes_video_and_gif(wm, tmp_path) -> None:
    video, gif = tmp_path / "out" / "plan.mp4", tmp_path / "plan.gif"
    result = wm(
        "plan", *TINY_PLAN, "--env", "jepa_wm/Reach-v0", "--seed", "0", "--row", "simulator",
        "--video", str(video), "--gif", str(gif),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("[plan] no world model: row simulator") and "(--row)" in lines[0]
    assert sum(line.startswith("step ") for line in lines) == 3
    assert "energy" in lines[2] and "distance" in lines[2]
    assert "success:" in lines[-1] and "ms/action" in lines[-1] and str(video) in lines[-1]
    frames = read_frames(video)
    assert len(frames) == 3 + 1  # the first observation and one per executed action
    height, width = frames[0].shape[:2]
    assert width > 2 * height  # current | goal | plot side by side
    assert height >= 256
    assert len(imageio.mimread(gif)) == 4
    assert not list(tmp_path.rglob(".*.tmp*"))  # no temp files left


def test_plan_with_custom_goal_image_of_another_size(wm, tmp_path) -> None:
    goal = tmp_path / "goal.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (120, 140, 3), dtype=np.uint8)).save(goal)
    video = tmp_path / "custom.mp4"
    result = wm("plan", *TINY_PLAN, "--row", "simulator", "--goal-image", str(goal), "--video", str(video))
    assert result.returncode == 0, result.stderr
    assert "[plan] goal image 140x120 -> centre crop 120x120 -> resize 64x64" in result.stdout.splitlines()
    assert "your goal image" in result.stdout and "its own goal" in result.stdout
    assert len(read_frames(video)) == 4


def test_plan_without_a_world_model_says_why_it_plans_with_the_simulator(wm, tmp_path) -> None:
    video = tmp_path / "plan.mp4"
    result = wm("plan", *TINY_PLAN, "eval.budget=1", f"run.root={tmp_path}", "--video", str(video))
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith("[plan] no world model: row simulator") and "eval.world_model is not set" in first
    assert str(tmp_path / "ac" / "tiny") in first
    assert "row=simulator" in result.stdout


@pytest.mark.parametrize("case", ["missing", "unreadable", "oracle"])
def test_plan_bad_goal_is_one_line_and_writes_nothing(wm, tmp_path, case) -> None:
    good = tmp_path / "goal.png"
    Image.fromarray(np.zeros((40, 40, 3), dtype=np.uint8)).save(good)
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    goal, row = {
        "missing": (tmp_path / "nope.png", "simulator"),
        "unreadable": (bad, "simulator"),
        "oracle": (good, "oracle"),
    }[case]
    video = tmp_path / "out" / "plan.mp4"
    result = wm("plan", *TINY_PLAN, "--row", row, "--goal-image", str(goal), "--video", str(video))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert "goal" in result.stderr
    assert not video.exists() and not list(tmp_path.rglob("*.mp4*"))


def test_plan_unknown_row_is_one_line(wm, tmp_path) -> None:
    result = wm("plan", *TINY_PLAN, "--row", "magic", "--video", str(tmp_path / "x.mp4"))
    assert result.returncode == 2 and "--row" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("shape", [(100, 120), (120, 100), (10, 10), (64, 64)])
def test_goal_image_is_centre_cropped_rgb_of_the_env_size(tmp_path, shape) -> None:
    h, w = shape
    image = np.zeros((h, w), dtype=np.uint8)  # greyscale: must come back as RGB
    image[
        h // 2 - min(h, w) // 4 : h // 2 + min(h, w) // 4, w // 2 - min(h, w) // 4 : w // 2 + min(h, w) // 4
    ] = 255
    path = tmp_path / "goal.jpg"
    Image.fromarray(image).save(path)
    goal = load_goal_image(path, 64).pixels
    assert goal.shape == (64, 64, 3) and goal.dtype == np.uint8
    assert goal[32, 32].min() > 200 and goal[2, 2].max() < 60  # the centre square survives the crop


@pytest.mark.parametrize(
    ("shape", "fit"),
    [
        ((64, 64), "goal image 64x64: used as is"),
        ((128, 128), "goal image 128x128 -> resize 64x64"),
        ((72, 80), "goal image 80x72 -> centre crop 72x72 -> resize 64x64"),
        ((70, 64), "goal image 64x70 -> centre crop 64x64"),
    ],
)
def test_goal_image_fit_is_said_in_words(tmp_path, shape, fit) -> None:
    path = tmp_path / "goal.png"
    pixels = np.random.default_rng(0).integers(0, 255, (*shape, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    goal = load_goal_image(path, 64)
    assert goal.fit == fit
    if shape == (64, 64):
        assert np.array_equal(goal.pixels, pixels)  # untouched, bit for bit


@pytest.mark.parametrize("shape", [(307, 516), (516, 307), (100, 126)])
def test_goal_image_far_from_square_is_refused(tmp_path, shape) -> None:
    path = tmp_path / "figure.png"
    Image.fromarray(np.zeros((*shape, 3), dtype=np.uint8)).save(path)
    with pytest.raises(UserError, match=f"is {shape[1]}x{shape[0]}: too far from the camera's 64x64"):
        load_goal_image(path, 64)
