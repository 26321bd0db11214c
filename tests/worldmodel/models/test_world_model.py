"""WorldModel facade: encode (normalised, pooled), KV-cached rollouts, gradients, state integration,
loading from a run folder."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from envs.arm import DOWN, HAND_TO_EE
from envs.registration import make_env
from planners.base import StatePredictingWorldModel
from planners.base import WorldModel as WorldModelProtocol
from worldmodel.common.errors import ConfigError, UserError
from worldmodel.models.ac_predictor import ACPredictor, ACPredictorConfig
from worldmodel.models.checkpoints import encoder_metadata, load_safetensors, save_encoder, save_safetensors
from worldmodel.models.encoders import latents_from_tokens
from worldmodel.models.vit import VisionTransformer, ViTConfig, normalize_images
from worldmodel.models.world_model import WorldModel

D = 48


def make_wm(pool: int | None = 2, action_dim: int = 7, state_dim: int = 7, **kw) -> WorldModel:
    torch.manual_seed(0)
    enc = VisionTransformer(
        ViTConfig(embed_dim=D, depth=1, num_heads=2, mlp_hidden=96, patch_size=8, img_size=32)
    )
    side = pool or 4
    pred = ACPredictor(
        ACPredictorConfig(
            embed_dim=D,
            width=32,
            depth=2,
            num_heads=2,
            grid_h=side,
            grid_w=side,
            action_dim=action_dim,
            state_dim=state_dim,
        )
    )
    with torch.no_grad():
        for p in pred.parameters():
            p.normal_(0, 0.2)
    return WorldModel.from_modules(enc, pred, latent_pool=pool, **kw).eval()


def images(b: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, 32, 32, 3), generator=g, dtype=torch.uint8)


def test_protocols() -> None:
    wm = make_wm()
    assert isinstance(wm, WorldModelProtocol)
    assert isinstance(wm, StatePredictingWorldModel)
    assert (wm.action_dim, wm.state_dim, wm.tokens_per_frame) == (7, 7, 4)


def test_encode_layer_normed_and_pooled() -> None:
    wm = make_wm(pool=2, encode_batch_size=2)
    imgs = images(5)
    z = wm.encode(imgs)
    assert z.shape == (5, 4, D)  # 4x4 encoder grid pooled to 2x2
    assert not z.requires_grad
    torch.testing.assert_close(z.mean(-1), torch.zeros(5, 4), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.var(-1, unbiased=False), torch.ones(5, 4), atol=1e-3, rtol=0)
    # batching does not change results; it is the pooled layer-normed encoder output
    one = torch.cat([wm.encode(imgs[i : i + 1]) for i in range(5)])
    torch.testing.assert_close(z, one, atol=1e-5, rtol=0)
    with torch.no_grad():
        tokens = wm.encoder(normalize_images(imgs))
    torch.testing.assert_close(z, latents_from_tokens(tokens, 4, 2), atol=1e-5, rtol=0)
    pooled = F.layer_norm(tokens, (D,)).view(5, 4, 4, D)[:, :2, :2].mean((1, 2))  # top-left 2x2 cell
    torch.testing.assert_close(z[:, 0], F.layer_norm(pooled, (D,)), atol=1e-5, rtol=0)
    full = make_wm(pool=None).encode(imgs)
    assert full.shape == (5, 16, D)


def test_encode_rejects_bad_images() -> None:
    wm = make_wm()
    with pytest.raises(UserError, match="uint8"):
        wm.encode(images(2).float())
    with pytest.raises(UserError, match=r"\[B,H,W,3\]"):
        wm.encode(images(2)[0])
    with pytest.raises(UserError, match="square"):
        wm.encode(torch.zeros(1, 32, 24, 3, dtype=torch.uint8))


def test_config_mismatch_errors() -> None:
    wm = make_wm(pool=2)
    with pytest.raises(ConfigError, match="ac.grid_h"):
        WorldModel(wm.encoder, wm.predictor, latent_pool=1)
    with pytest.raises(ConfigError, match="train.state_update"):
        WorldModel(wm.encoder, wm.predictor, latent_pool=2, state_update="teleport")
    with pytest.raises(ConfigError, match="'compose' needs 7-D"):
        make_wm(action_dim=2, state_dim=2, state_update="compose")
    with pytest.raises(ConfigError, match="ac.action_low"):
        WorldModel(wm.encoder, wm.predictor, latent_pool=2, action_low=[0.0, 1.0])


def _recompute_rollout(wm: WorldModel, z0: torch.Tensor, s0: torch.Tensor, actions: torch.Tensor):
    """Reference: re-run the full forward over the growing sequence each step (official planning)."""
    zs, ss, preds = [z0], [s0], []
    for h in range(actions.shape[1]):
        out = wm.predictor(torch.stack(zs, 1), actions[:, : h + 1], torch.stack(ss, 1))[:, -1]
        out = F.layer_norm(out, (out.shape[-1],))
        preds.append(out)
        zs.append(out)
        ss.append(wm.next_state(ss[-1], actions[:, h]))
    return torch.stack(preds, 1), torch.stack(ss[1:], 1)


def test_rollout_equals_full_recompute() -> None:
    wm = make_wm()
    z0 = wm.encode(images(3))
    g = torch.Generator().manual_seed(3)
    s0 = torch.rand(3, 7, generator=g)
    actions = torch.randn(3, 5, 7, generator=g) * 0.3
    pred, states = wm.rollout_with_states(z0, s0, actions)
    ref_pred, ref_states = _recompute_rollout(wm, z0, s0, actions)
    assert pred.shape == (3, 5, 4, D) and states.shape == (3, 5, 7)
    torch.testing.assert_close(pred, ref_pred, atol=1e-5, rtol=0)
    torch.testing.assert_close(states, ref_states)
    torch.testing.assert_close(wm.rollout(z0, s0, actions), pred, atol=1e-6, rtol=0)
    # predict(): full history vs. cache + new step
    nxt, cache = wm.predict(z0[:, None], actions[:, :1], s0[:, None])
    torch.testing.assert_close(nxt, pred[:, 0], atol=1e-5, rtol=0)
    nxt2, cache = wm.predict(pred[:, :1], actions[:, 1:2], states[:, :1], cache)
    torch.testing.assert_close(nxt2, pred[:, 1], atol=1e-5, rtol=0)
    assert len(cache) == 1 and cache[0].steps == 2  # one cache per ensemble member
    # a history z0 [B,T,N,D] with its past actions/states == continuing the rollout
    hist = torch.stack([z0, pred[:, 0]], 1)
    cont, _ = wm.rollout_with_states(
        hist, states[:, 0], actions[:, 1:], past_actions=actions[:, :1], past_states=s0[:, None]
    )
    torch.testing.assert_close(cont, pred[:, 1:], atol=1e-5, rtol=0)


def test_rollout_is_differentiable_wrt_actions() -> None:
    wm = make_wm()
    z0 = wm.encode(images(2))
    goal = wm.encode(images(2, seed=9))
    actions = (torch.randn(2, 3, 7) * 0.1).requires_grad_(True)
    pred = wm.rollout(z0, torch.full((2, 7), 0.5), actions)
    energy = (pred[:, -1] - goal).abs().mean()
    (grad,) = torch.autograd.grad(energy, actions)
    assert torch.isfinite(grad).all()
    assert grad[:, 0].abs().sum() > 0  # the first action moves the final frame
    assert all(p.grad is None for p in wm.predictor.parameters())  # frozen: no weight grads


def test_state_integration_math() -> None:
    wm = make_wm(action_low=[-0.1] * 7, action_high=[0.1] * 7, state_update="add")
    assert wm.state_update == "add"
    s = torch.tensor([[0.1, 0.2, 0.3, 0.0, 0.1, -0.2, 0.95]])
    a = torch.tensor([[0.05, -0.5, 0.0, 0.01, 0.0, 0.02, 0.08]])
    expected = torch.tensor([[0.15, 0.1, 0.3, 0.01, 0.1, -0.18, 1.0]])  # dy clipped, gripper clipped
    torch.testing.assert_close(wm.next_state(s, a), expected)
    low = wm.next_state(torch.tensor([[0.0] * 6 + [0.02]]), torch.tensor([[0.0] * 6 + [-0.1]]))
    assert float(low[0, 6]) == 0.0
    _, states = wm.rollout_with_states(wm.encode(images(1)), s, a[:, None].repeat(1, 3, 1))
    torch.testing.assert_close(states[0, 2, :3], torch.tensor([0.25, -0.1, 0.3]))
    assert float(states[0, 2, 6]) == 1.0
    hold = make_wm(action_dim=2, state_dim=4)
    assert hold.state_update == "hold"
    s4 = torch.randn(2, 4)
    _, states = hold.rollout_with_states(hold.encode(images(2)), s4, torch.randn(2, 3, 2))
    torch.testing.assert_close(states, s4[:, None].expand(2, 3, 4))
    forced = make_wm(state_update="hold")
    assert forced.next_state(s, a) is s


def test_compose_matches_add_about_one_axis_and_differs_otherwise() -> None:
    wm = make_wm(action_low=[-0.1] * 7, action_high=[0.1] * 7)
    assert wm.state_update == "compose"  # auto, 7-D
    add = make_wm(action_low=[-0.1] * 7, action_high=[0.1] * 7, state_update="add")
    s = torch.tensor([[0.1, 0.2, 0.3, 0.0, 0.0, -0.2, 0.95]])
    a = torch.tensor([[0.05, -0.5, 0.0, 0.0, 0.0, 0.05, 0.08]])  # yaw only: composition is a sum
    torch.testing.assert_close(wm.next_state(s, a), add.next_state(s, a))
    s[0, 3:5] = torch.tensor([0.3, -0.2])
    a[0, 3:5] = torch.tensor([0.1, 0.1])
    composed, added = wm.next_state(s, a), add.next_state(s, a)
    torch.testing.assert_close(composed[:, :3], added[:, :3])  # xyz and gripper still add (clipped)
    torch.testing.assert_close(composed[:, 6:], added[:, 6:])
    assert (composed[:, 3:6] - added[:, 3:6]).abs().max() > 1e-3


def test_next_state_predicts_the_arm_env_rotation() -> None:
    """Step the real env: composing predicts the pose the env commands; adding angles does not."""
    rotation = pytest.importorskip("scipy.spatial.transform").Rotation
    env = make_env("jepa_wm/Reach-v0", render_pixels=False)
    space = env.action_space
    wm = make_wm(action_low=space.low, action_high=space.high)
    add = make_wm(action_low=space.low, action_high=space.high, state_update="add")
    obs, _ = env.reset(seed=0)
    arm = env.unwrapped.arm
    worst_compose = worst_add = 0.0
    actions = [[0.02, -0.01, 0.01, 0.1, -0.08, 0.12, -0.3], [0.0, 0.0, 0.0, 0.15, 0.15, 0.15, 0.0],
               [0.0, 0.01, 0.0, -0.1, 0.05, -0.15, 0.2]]  # fmt: skip
    for action in np.asarray(actions, dtype=np.float32):
        state = torch.from_numpy(obs["state"])[None]
        predicted = wm.next_state(state, torch.from_numpy(action)[None])[0].numpy()
        obs, *_ = env.step(action)
        hand = rotation.from_quat(np.roll(arm.data.mocap_quat[0], -1))  # the env's commanded pose
        target_rot = (hand * DOWN.inv()).as_euler("xyz")
        target_pos = arm.data.mocap_pos[0] + HAND_TO_EE * hand.apply([0.0, 0.0, 1.0])
        np.testing.assert_allclose(predicted[3:6], target_rot, atol=1e-3)
        np.testing.assert_allclose(predicted[:3], target_pos, atol=1e-3)
        worst_compose = max(worst_compose, float(np.abs(predicted[3:6] - target_rot).max()))
        added = add.next_state(state, torch.from_numpy(action)[None])[0].numpy()
        worst_add = max(worst_add, float(np.abs(added[3:6] - target_rot).max()))
        # the measured pose lags the commanded one by up to ~0.01 rad after one control step
        np.testing.assert_allclose(obs["state"][3:6], target_rot, atol=0.03)
    env.close()
    assert worst_compose < 1e-5 < 1e-2 < worst_add


def save_run(wm: WorldModel, folder, state_update: str = "add", encoder_hash: str | None = None):
    """A run folder as `wm train` writes it (encoder exported by `wm pretrain`), without training."""
    enc_path = save_encoder(wm.encoder, folder / "enc" / "encoder.safetensors")
    meta = encoder_metadata(wm.encoder.cfg, wm.encoder.state_dict())
    save_encoder(wm.encoder, enc_path, meta)
    save_safetensors(
        wm.predictor.state_dict(),
        folder / "run" / "predictor.safetensors",
        {
            "format": "jepa-wm.ac-predictor",
            "ac_config": json.dumps(asdict(wm.predictor.cfg)),
            "encoder": str(enc_path),
            "encoder_hash": encoder_hash or meta["weights_hash"],
            "latent_pool": str(wm.latent_pool),
            "state_update": state_update,
        },
    )
    return folder / "run"


def test_from_run_round_trip_and_errors(tmp_path) -> None:
    wm = make_wm(pool=2, state_update="add")
    run = save_run(wm, tmp_path)
    loaded = WorldModel.from_run(run)
    assert (loaded.latent_pool, loaded.state_update, loaded.tokens_per_frame) == (2, "add", 4)
    imgs = images(2)
    torch.testing.assert_close(loaded.encode(imgs), wm.encode(imgs))
    z0, s0, actions = wm.encode(imgs), torch.rand(2, 7), torch.randn(2, 3, 7) * 0.1
    torch.testing.assert_close(loaded.rollout(z0, s0, actions), wm.rollout(z0, s0, actions))
    assert WorldModel.from_run(run / "predictor.safetensors", state_update="hold").state_update == "hold"
    with pytest.raises(UserError, match="no such AC run folder"):
        WorldModel.from_run(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no predictor.safetensors"):
        WorldModel.from_run(tmp_path / "empty")
    (tmp_path / "enc" / "encoder.safetensors").unlink()
    with pytest.raises(UserError, match="no encoder.safetensors"):
        WorldModel.from_run(run)
    stale = save_run(wm, tmp_path / "stale", encoder_hash="0" * 16)
    with pytest.raises(UserError, match="changed since the predictor was trained"):
        WorldModel.from_run(stale)
    bad = save_run(wm, tmp_path / "bad")
    state, meta = load_safetensors(bad / "predictor.safetensors")
    save_safetensors(state, bad / "predictor.safetensors", {**meta, "ac_config": json.dumps({"depth": 1})})
    with pytest.raises(UserError, match="weights do not fit its ac_config"):
        WorldModel.from_run(bad)
