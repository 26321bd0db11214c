"""`wm envs list|show|goal`: the real command, real MuJoCo rendering."""

from __future__ import annotations

import numpy as np
from PIL import Image


def test_envs_list_shows_every_task(wm) -> None:
    result = wm("envs", "list")
    assert result.returncode == 0, result.stderr
    for task in ("Reach-v0", "Push-v0", "Grasp-v0", "PickPlace-v0"):
        assert task in result.stdout


def test_envs_show_writes_scene_and_goal_picture(wm, tmp_path) -> None:
    out = tmp_path / "pics" / "scene.png"
    result = wm("envs", "show", "jepa_wm/PickPlace-v0", "--out", str(out), "--size", "128")
    assert result.returncode == 0, result.stderr
    image = np.asarray(Image.open(out).convert("RGB"))
    assert image.shape[0] > 100 and image.shape[1] > 200
    assert image.std() > 10  # not a blank canvas
    assert result.stdout.startswith(f"wrote {out}: jepa_wm/PickPlace-v0 seed 0, split train,")
    assert "`wm envs goal`" in result.stdout


def test_envs_show_says_which_split_it_rendered(wm, tmp_path) -> None:
    out = tmp_path / "scene.png"
    by_option = wm(
        "envs", "show", "jepa_wm/Reach-v0", "--out", str(out), "--size", "32", "--split", "heldout"
    )
    by_key = wm(
        "envs", "show", "jepa_wm/Reach-v0", "split=heldout", "seed=2", "--out", str(out), "--size", "32"
    )
    assert by_option.returncode == 0 and by_key.returncode == 0, by_option.stderr + by_key.stderr
    assert "seed 0, split heldout" in by_option.stdout and "seed 2, split heldout" in by_key.stdout


def test_envs_goal_is_the_plan_split_goal_at_the_env_size(wm, tmp_path) -> None:
    heldout, train = tmp_path / "heldout.png", tmp_path / "train.png"
    assert wm("envs", "goal", "jepa_wm/Push-v0", "--seed", "1", "--out", str(heldout)).returncode == 0
    result = wm("envs", "goal", "jepa_wm/Push-v0", "split=train", "seed=1", "--out", str(train))
    assert result.returncode == 0, result.stderr
    assert "seed 1, split train, 64x64" in result.stdout
    a, b = np.asarray(Image.open(heldout)), np.asarray(Image.open(train))
    assert a.shape == b.shape == (64, 64, 3)
    assert not np.array_equal(a, b)  # the held-out split's other colours


def test_envs_goal_bad_input_is_one_line_and_writes_nothing(wm, tmp_path) -> None:
    for args, words in [
        (["--out", str(tmp_path / "goal.jpg")], [".png"]),
        (["--split", "test", "--out", str(tmp_path / "goal.png")], ["--split", "test"]),
        (["--out", str(tmp_path / "goal.png"), "episodes=x"], ["eval.episodes"]),
    ]:
        result = wm("envs", "goal", "jepa_wm/Reach-v0", *args)
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert all(word in result.stderr for word in words), result.stderr
    assert not list(tmp_path.iterdir())


def test_envs_list_imports_a_module_named_by_key(wm) -> None:
    result = wm("envs", "list", "import=no_such_module_xyz")
    assert result.returncode == 2 and "no_such_module_xyz" in result.stderr


def test_envs_show_unknown_id_is_one_clear_line(wm, tmp_path) -> None:
    result = wm("envs", "show", "jepa_wm/Nope-v0", "--out", str(tmp_path / "x.png"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "Nope-v0" in result.stderr
    assert not (tmp_path / "x.png").exists()


def test_envs_show_bad_split_is_one_clear_line(wm, tmp_path) -> None:
    result = wm("envs", "show", "jepa_wm/Reach-v0", "--split", "test", "--out", str(tmp_path / "x.png"))
    assert result.returncode == 2
    assert "split" in result.stderr
    assert "Traceback" not in result.stderr
