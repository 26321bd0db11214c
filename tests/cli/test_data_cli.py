"""`wm data info|check` on real files, good and broken."""

from __future__ import annotations

import h5py
import numpy as np

from data.episodes import EpisodeWriter
from tests.data.helpers import make_episode, make_meta
from tests.data.test_importers import write_robomimic


def _dataset(path):
    with EpisodeWriter(path, make_meta()) as writer:
        for index in range(3):
            writer.write(index, make_episode(5, seed=index))
        writer.finalize()
    return path


def test_info_prints_summary_and_preview(wm, tmp_path) -> None:
    path = _dataset(tmp_path / "d.h5")
    preview = tmp_path / "sheet.png"
    result = wm("data", "info", str(path), "--preview", str(preview))
    assert result.returncode == 0, result.stderr
    assert "episodes" in result.stdout and "3" in result.stdout
    assert preview.stat().st_size > 100


def test_check_passes_then_fails_with_one_line_per_problem(wm, tmp_path) -> None:
    path = _dataset(tmp_path / "d.h5")
    assert wm("data", "check", str(path)).returncode == 0
    with h5py.File(path, "a") as handle:
        del handle["data/ep_000001/actions"]
        handle["data/ep_000001/actions"] = np.full((5, 7), np.nan, np.float32)
    result = wm("data", "check", str(path))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [f"{path}: episode ep_000001: key actions: contains NaN or infinite values"]


def test_info_on_random_file_is_one_line(wm, tmp_path) -> None:
    path = tmp_path / "random.h5"
    path.write_bytes(np.random.default_rng(0).bytes(1000))
    result = wm("data", "info", str(path))
    assert result.returncode == 2
    assert "not a readable HDF5 file" in result.stderr and "Traceback" not in result.stderr


def test_import_robomimic_cli_and_unknown_kind(wm, tmp_path) -> None:
    source = write_robomimic(tmp_path / "lift.hdf5")
    out = tmp_path / "lift.h5"
    result = wm("data", "import", "--format", "robomimic", str(source), str(out), "--image-size", "32")
    assert result.returncode == 0, result.stderr
    assert wm("data", "check", str(out)).returncode == 0
    bad = wm("data", "import", "--format", "rlds", str(source), str(tmp_path / "y.h5"))
    assert bad.returncode == 2 and "expected robomimic or lerobot, got 'rlds'" in bad.stderr
