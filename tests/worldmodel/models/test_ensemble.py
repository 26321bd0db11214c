"""Ensemble world models (`train.ensemble`): K predictors behind one `WorldModel`, the members'
mean as its rollout, each member's own rollout, and loading the members from a run folder."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import pytest
import torch

from planners.interface import EnsembleWorldModel
from tests.worldmodel.models.test_world_model import images, make_wm, save_run
from worldmodel.common.errors import ConfigError, UserError
from worldmodel.models.ac_predictor import ACPredictor
from worldmodel.models.checkpoints import safetensors_metadata, save_safetensors
from worldmodel.models.predictor_file import member_files
from worldmodel.models.world_model import WorldModel


def other_predictor(wm: WorldModel, seed: int) -> ACPredictor:
    torch.manual_seed(seed)
    predictor = ACPredictor(wm.predictor.cfg)
    with torch.no_grad():
        for p in predictor.parameters():
            p.normal_(0, 0.2)
    return predictor.eval()


def ensemble(k: int = 3) -> tuple[WorldModel, list[WorldModel]]:
    """An ensemble of k predictors and the k single-predictor models with the same weights."""
    base = make_wm(pool=2)
    members = [base.predictor] + [other_predictor(base, seed) for seed in range(1, k)]
    singles = [WorldModel.from_modules(base.encoder, p, 2) for p in members]
    return WorldModel.from_modules(base.encoder, members[0], 2, members=members[1:]), singles


def test_rollout_is_the_members_mean_and_members_roll_alone() -> None:
    wm, singles = ensemble(3)
    assert isinstance(wm, EnsembleWorldModel) and wm.ensemble_size == 3
    z0, s0, actions = wm.encode(images(2)), torch.rand(2, 7), torch.randn(2, 4, 7) * 0.1
    members, states = wm.rollout_members(z0, s0, actions)
    assert members.shape == (3, 2, 4, 4, 48)
    for k, single in enumerate(singles):
        alone, alone_states = single.rollout_with_states(z0, s0, actions)
        torch.testing.assert_close(members[k], alone)
        torch.testing.assert_close(states, alone_states)
    assert (members[1] - members[0]).abs().mean() > 1e-3  # the members differ
    torch.testing.assert_close(wm.rollout(z0, s0, actions), members.mean(0))
    # a history of frames: every member is prefilled with it
    history = torch.stack([z0, z0], 1)
    torch.testing.assert_close(
        wm.rollout_members(history, s0, actions)[0][2], singles[2].rollout(history, s0, actions)
    )


def test_predict_averages_members_and_keeps_one_cache_each() -> None:
    wm, singles = ensemble(2)
    z = wm.encode(images(2))[:, None]
    a, s = torch.randn(2, 1, 7) * 0.1, torch.rand(2, 1, 7)
    pred, caches = wm.predict(z, a, s)
    assert len(caches) == 2
    expected = torch.stack([single.predict(z, a, s)[0] for single in singles]).mean(0)
    torch.testing.assert_close(pred, expected)
    nxt, caches = wm.predict(pred[:, None], a, s, caches)  # the caches go on, one per member
    assert [c.steps for c in caches] == [2, 2]


def test_members_must_share_the_predictor_config() -> None:
    base = make_wm(pool=2)
    other = ACPredictor(replace(base.predictor.cfg, depth=1))
    with pytest.raises(ConfigError, match="ensemble member 1 has another predictor config"):
        WorldModel.from_modules(base.encoder, base.predictor, 2, members=[other])


def save_member(run, k: int, predictor: ACPredictor, encoder_hash: str | None = None) -> None:
    """Member k as `wm train train.ensemble` exports it: the run's metadata, its own weights."""
    meta = safetensors_metadata(run / "predictor.safetensors")
    meta["ac_config"] = json.dumps(asdict(predictor.cfg))
    if encoder_hash:
        meta["encoder_hash"] = encoder_hash
    save_safetensors(predictor.state_dict(), run / f"member{k}" / "predictor.safetensors", meta)


def test_from_run_loads_the_members_in_order(tmp_path) -> None:
    wm, singles = ensemble(3)
    run = save_run(wm, tmp_path, state_update="compose")
    assert WorldModel.from_run(run).ensemble_size == 1  # no member folders: one predictor
    for k in (1, 2):
        save_member(run, k, singles[k].predictor)
    (run / "member_notes").mkdir()  # not a member folder
    assert [f.parent.name for f in member_files(run)] == ["member1", "member2"]
    loaded = WorldModel.from_run(run)
    assert loaded.ensemble_size == 3
    z0, s0, actions = wm.encode(images(2)), torch.rand(2, 7), torch.randn(2, 3, 7) * 0.1
    torch.testing.assert_close(
        loaded.rollout_members(z0, s0, actions)[0], wm.rollout_members(z0, s0, actions)[0]
    )
    save_member(run, 10, singles[1].predictor)
    assert [f.parent.name for f in member_files(run)] == ["member1", "member2", "member10"]
    save_member(run, 3, singles[1].predictor, encoder_hash="0" * 16)
    with pytest.raises(
        UserError, match="member3/predictor.safetensors': this ensemble member was trained on another encoder"
    ):
        WorldModel.from_run(run)
