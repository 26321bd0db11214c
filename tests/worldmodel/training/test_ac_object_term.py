"""`readout.object_weight`: the AC predictor trains on keypoints + the object's (x, y), and the run's
`WorldModel.encode` adds the same (x, y) when it plans."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from data.episodes import EpisodeReader
from tests.worldmodel.training.tiny_runs import make_tiny_run
from worldmodel.common.errors import ConfigError, UserError
from worldmodel.config.schema import load_config
from worldmodel.evaluation.evaluate import evaluate
from worldmodel.evaluation.rollout_report import rollout_report
from worldmodel.models.object_locator import ObjectTerm, frame_colours, locate_object
from worldmodel.models.readout import ReadoutConfig
from worldmodel.models.world_model import WorldModel
from worldmodel.training.ac_data import with_frame_features

# The state estimate from the tokens unless a test asks for the pixels (the tiny preset's source).
KEYPOINTS = [
    "readout.kind=keypoints",
    "readout.keypoints=4",
    "readout.steps=20",
    "readout.state_source=tokens",
]


def plan_one_episode(run, task: str) -> np.ndarray:
    """The learned row of `run` on one episode of `task`, two MPC steps: the planned energies."""
    config = load_config(
        [f"world_model={run}", "rows=[learned]", f"tasks=[{task}]", "episodes=1", "budget=2",
         "plan.samples=8", "plan.iterations=1"],
        section="eval",
    )  # fmt: skip
    [learned] = evaluate(config, progress=False)
    return np.asarray(learned.energies[0])


def test_a_run_with_an_object_term_encodes_and_plans_with_the_object(tiny_dataset, tmp_path) -> None:
    run = make_tiny_run(tmp_path, tiny_dataset, *KEYPOINTS, "readout.object_weight=16", name="obj")
    wm = WorldModel.from_run(run)
    assert wm.predictor.cfg.embed_dim == 8 + 2 and wm.metadata["object_weight"] == "16.0"
    frames = torch.from_numpy(EpisodeReader(tiny_dataset).read_frames(0)[:5])
    z = wm.encode(frames)
    assert z.shape == (5, 1, 10)
    expected = 16 * locate_object(frames, frame_colours(frames))
    torch.testing.assert_close(z[:, 0, 8:], expected)
    energies = plan_one_episode(run, "jepa_wm/Push-v0")
    assert len(energies) == 2 and np.isfinite(energies).all()


def test_the_rollout_report_reads_the_object_from_the_frames_beside_the_cache(tiny_dataset, tmp_path) -> None:
    """The cache holds keypoint tokens, not the object: `wm rollout-report` joins the located
    (x, y) to them, as `encode` does, so both latent sources give the same report."""
    run = make_tiny_run(tmp_path, tiny_dataset, *KEYPOINTS, "readout.object_weight=16", name="obj")
    wm = WorldModel.from_run(run)
    cached = rollout_report(wm, run, tiny_dataset, horizon=2)
    encoded = rollout_report(wm, run, tiny_dataset, horizon=2, cache=run / "none.h5")
    assert cached.latents.startswith("cache ") and encoded.latents.startswith("encoded")
    for a, b in zip(cached.rows, encoded.rows, strict=True):
        assert a.model_l1 == pytest.approx(b.model_l1, rel=2e-2)
        assert a.copy_l1 == pytest.approx(b.copy_l1, rel=2e-2, abs=1e-3)


def test_a_run_without_it_keeps_its_header_and_width(tiny_dataset, tmp_path) -> None:
    wm = WorldModel.from_run(make_tiny_run(tmp_path, tiny_dataset, *KEYPOINTS, name="plain"))
    assert wm.predictor.cfg.embed_dim == 8 and wm.object_term is None
    assert not any(key.startswith("object") for key in wm.metadata)


def test_frame_features_join_every_cache_entry_in_order_copies_included(tiny_dataset) -> None:
    reader = EpisodeReader(tiny_dataset)
    n = len(reader)
    lengths = [len(reader.read_states(i)) for i in range(n)]
    episodes = [
        (np.full((t, 1, 4), c, np.float32), np.zeros((t, 3)), np.zeros((t - 1, 2)))
        for c in range(2)
        for t in lengths
    ]

    def frame_count(frames: torch.Tensor) -> torch.Tensor:  # a feature that shows where it lands
        return torch.full((len(frames), 1), float(len(frames)))

    joined = with_frame_features(episodes, str(tiny_dataset), [frame_count, ObjectTerm(4.0).positions])
    frames = torch.from_numpy(reader.read_frames(0))
    expected = 4.0 * locate_object(frames, frame_colours(frames))
    for copy in (0, 1):
        latents = joined[copy * n][0]
        assert latents.shape == (lengths[0], 1, 7) and (latents[..., :4] == copy).all()
        assert (latents[:, 0, 4] == lengths[0]).all()
        np.testing.assert_allclose(latents[:, 0, 5:], expected.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(UserError, match="rebuild it with `wm cache`"):
        with_frame_features(episodes[:-1], str(tiny_dataset), [ObjectTerm(4.0).positions])


def test_object_weight_needs_the_keypoint_readout() -> None:
    with pytest.raises(
        ConfigError, match="'readout.object_weight': expected 0 unless readout.kind=keypoints"
    ):
        ReadoutConfig(object_weight=2.0).validate()
    with pytest.raises(ConfigError, match="'readout.object_temperature': expected a number > 0"):
        ReadoutConfig(kind="keypoints", object_weight=2.0, object_temperature=0.0).validate()


def test_a_run_with_a_state_term_encodes_the_estimate_between_keypoints_and_object(
    tiny_dataset, tmp_path
) -> None:
    """`readout.state_weight`: the readout's state head estimates the chosen logged dims; the run's
    latent is [keypoints, weight x estimate, object], the predictor is that wide, and it plans."""
    run = make_tiny_run(
        tmp_path, tiny_dataset, *KEYPOINTS, "readout.object_weight=16", "readout.state_weight=4",
        "readout.state_dims=[0,1,2]", name="state",
    )  # fmt: skip
    wm = WorldModel.from_run(run)
    assert wm.readout.state_dim == 3 and wm.predictor.cfg.embed_dim == 8 + 3 + 2
    frames = torch.from_numpy(EpisodeReader(tiny_dataset).read_frames(0)[:5])
    z = wm.encode(frames)
    assert z.shape == (5, 1, 13)
    estimate = z[:, 0, 8:11] / 4
    assert torch.isfinite(estimate).all() and estimate.std(0).gt(0).all()  # it reads each frame
    torch.testing.assert_close(z[:, 0, 11:], 16 * locate_object(frames, frame_colours(frames)))
    assert np.isfinite(plan_one_episode(run, "jepa_wm/Reach-v0")).all()


def test_a_run_with_a_pixel_state_term_reads_the_state_off_the_frames(tiny_dataset, tmp_path) -> None:
    """`readout.state_source=pixels`: the estimate comes from the run's pixel_state.safetensors (the
    readout has no state head), sits between keypoints and object, the rollout report joins it to
    the cached keypoints as `encode` does, and the run plans."""
    run = make_tiny_run(
        tmp_path, tiny_dataset, *KEYPOINTS, "readout.object_weight=16", "readout.state_weight=4",
        "readout.state_dims=[0,1,2,6]", "readout.state_source=pixels", "readout.pixel_steps=20", name="pix",
    )  # fmt: skip
    wm = WorldModel.from_run(run)
    assert (run / "pixel_state.safetensors").is_file() and wm.metadata["state_source"] == "pixels"
    assert wm.readout.state_dim == 0 and wm.pixel_state.state_dim == 4
    assert wm.predictor.cfg.embed_dim == 8 + 4 + 2
    frames = torch.from_numpy(EpisodeReader(tiny_dataset).read_frames(0)[:5])
    z = wm.encode(frames)
    assert z.shape == (5, 1, 14)
    torch.testing.assert_close(z[:, 0, 8:12], 4 * wm.pixel_state(frames))
    torch.testing.assert_close(z[:, 0, 12:], 16 * locate_object(frames, frame_colours(frames)))
    cached = rollout_report(wm, run, tiny_dataset, horizon=2)
    encoded = rollout_report(wm, run, tiny_dataset, horizon=2, cache=run / "none.h5")
    assert cached.latents.startswith("cache ")
    for a, b in zip(cached.rows, encoded.rows, strict=True):
        assert a.model_l1 == pytest.approx(b.model_l1, rel=2e-2)
    assert np.isfinite(plan_one_episode(run, "jepa_wm/Reach-v0")).all()
    (run / "pixel_state.safetensors").unlink()
    with pytest.raises(UserError, match="pixel_state.safetensors is missing"):
        WorldModel.from_run(run)


def test_state_source_is_checked() -> None:
    with pytest.raises(
        ConfigError, match=re.escape("'readout.state_source': expected tokens | pixels, got 'camera'")
    ):
        ReadoutConfig(kind="keypoints", state_source="camera").validate()
    with pytest.raises(ConfigError, match="'readout.pixel_steps': expected an integer >= 1"):
        ReadoutConfig(kind="keypoints", pixel_steps=0).validate()
