"""`wm envs list|show`: the real command, real MuJoCo rendering."""

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
