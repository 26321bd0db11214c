"""`wm rollout-report` on a real (barely trained) AC run: table, JSON, cache == encoding, held-out choice."""

from __future__ import annotations

import json
import math

import pytest
import torch

from data.episodes import EpisodeReader
from tests.worldmodel.training.tiny_runs import make_tiny_run
from worldmodel.evaluation.rollout_report import held_out_episodes, rollout_report
from worldmodel.models.world_model import WorldModel


@pytest.fixture(scope="module")
def tiny_run(tiny_dataset, tmp_path_factory):
    return make_tiny_run(tmp_path_factory.mktemp("rollout"), tiny_dataset)


class FakeReader(list):
    """Just what `held_out_episodes` reads: per-episode attrs, a length and a path."""

    path = "x.h5"

    @property
    def attrs(self) -> list[dict]:
        return list(self)


def test_held_out_episodes() -> None:
    chosen, text = held_out_episodes(FakeReader([{"split": "train"}] * 3 + [{"split": "heldout"}] * 2))
    assert chosen == [3, 4] and "split=heldout" in text
    chosen, text = held_out_episodes(FakeReader([{"split": "train"}] * 11))
    assert chosen == [8, 9, 10] and "last 3 of 11" in text  # ceil(20 %)
    assert held_out_episodes(FakeReader([{}]))[0] == [0]


def test_report_cache_equals_encoding_and_baseline_is_copy(tiny_run, tiny_dataset) -> None:
    wm = WorldModel.from_run(tiny_run)
    cached = rollout_report(wm, tiny_run, tiny_dataset, horizon=3)
    encoded = rollout_report(wm, tiny_run, tiny_dataset, horizon=3, cache=tiny_run / "none.h5")
    assert cached.latents.startswith("cache ") and encoded.latents.startswith("encoded")
    assert "seen in training" in cached.selection and cached.episodes == [4, 5]
    assert cached.windows == encoded.windows == 2 * (12 - 3 + 1)
    for a, b in zip(cached.rows, encoded.rows, strict=True):
        assert a.model_l1 == pytest.approx(b.model_l1, rel=2e-2)
        assert a.copy_l1 == pytest.approx(b.copy_l1, rel=2e-2, abs=1e-3)
    reader = EpisodeReader(tiny_dataset)
    z = torch.cat([wm.encode(torch.from_numpy(reader.read_frames(e))) for e in (4, 5)])
    z = z.view(2, 13, *z.shape[1:])
    copy_h2 = (z[:, :-2] - z[:, 2:])[:, :10].abs().mean()  # starts 0..9, horizon 2
    assert encoded.rows[1].copy_l1 == pytest.approx(float(copy_h2), rel=1e-4)


def test_rollout_report_cli(wm, tiny_run, tiny_dataset) -> None:
    result = wm("rollout-report", str(tiny_run), str(tiny_dataset), "--horizon", "4")
    assert result.returncode == 0, result.stderr
    assert "model/copy" in result.stdout and "latents: cache" in result.stdout
    payload = json.loads((tiny_run / "rollout_report.json").read_text())
    assert [r["horizon"] for r in payload["rows"]] == [1, 2, 3, 4]
    assert all(math.isfinite(r[k]) for r in payload["rows"] for k in ("model_l1", "copy_l1", "ratio"))
    assert payload["state_update"] == "compose" and payload["episodes"] == [4, 5]
    long = wm("rollout-report", str(tiny_run), str(tiny_dataset), "--horizon", "50")
    assert long.returncode == 2 and "lower --horizon" in long.stderr
