"""`wm energy` on a real (barely trained) AC run: a valid PNG, finite numbers, facade-consistent energies."""

from __future__ import annotations

import re

import matplotlib.image
import numpy as np
import pytest
import torch

from data.episodes import EpisodeReader
from tests.worldmodel.training.tiny_runs import make_tiny_run
from worldmodel.evaluation.energy_map import action_bounds, energy_map
from worldmodel.models.world_model import WorldModel


@pytest.fixture(scope="module")
def tiny_run(tiny_dataset, tmp_path_factory):
    return make_tiny_run(tmp_path_factory.mktemp("energy"), tiny_dataset)


def test_energy_map_matches_the_facade(tiny_run, tiny_dataset) -> None:
    wm = WorldModel.from_run(tiny_run)
    reader = EpisodeReader(tiny_dataset)
    result = energy_map(wm, reader, episode=1, step=3, grid=5)
    assert result.energy.shape == (5, 5) and np.isfinite(result.energy).all()
    low, high = action_bounds(reader)
    assert result.xs[0] == pytest.approx(low[0]) and result.ys[-1] == pytest.approx(high[1])
    # cell (i=1, j=3) is the action with dx = xs[3], dy = ys[1], the rest the true action's
    action = torch.from_numpy(reader.read_actions(1)[3]).clone()
    action[0], action[1] = float(result.xs[3]), float(result.ys[1])
    z = wm.encode(torch.from_numpy(reader.read_frames(1, slice(3, 5))))
    state = torch.from_numpy(reader.read_states(1)[3])
    pred, _ = wm.predict(z[:1, None], action[None, None], state[None, None])
    assert result.energy[1, 3] == pytest.approx(float((pred[0] - z[1]).abs().mean()), abs=1e-5)
    assert result.copy_energy == pytest.approx(float((z[0] - z[1]).abs().mean()), abs=1e-6)
    summary = result.summary()
    assert summary["dims"] == ["dx", "dy"]
    numbers = [v for k, v in summary.items() if k not in ("dims", "episode", "step")]
    assert np.isfinite(np.hstack(numbers)).all()
    assert 0.0 <= summary["lower_fraction"] <= 1.0 and summary["grid_step"] == pytest.approx(0.025)


def test_energy_cli_writes_png_and_finite_numbers(wm, tiny_run, tiny_dataset, tmp_path) -> None:
    out = tmp_path / "energy.png"
    result = wm("energy", str(tiny_run), str(tiny_dataset), "--grid", "7", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.image.imread(out).ndim == 3
    text = result.stdout
    assert "first held-out episode" in text and "copy-last-frame" in text and f"wrote {out}" in text
    numbers = [float(x) for x in re.findall(r"[-+]?\d+\.\d+", text)]
    assert numbers and all(np.isfinite(numbers))
    assert re.search(r"argmin is \d+\.\d+ action units from the true action", text)
    bad = wm("energy", str(tiny_run), str(tiny_dataset), "--episode", "99")
    assert bad.returncode == 2 and "option --episode" in bad.stderr and "Traceback" not in bad.stderr
