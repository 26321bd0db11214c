"""WorldModel facade: encode (normalised, pooled), KV-cached rollouts, gradients, state integration."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from planners.base import StatePredictingWorldModel
from planners.base import WorldModel as WorldModelProtocol
from worldmodel.ac_predictor import ACPredictor, ACPredictorConfig
from worldmodel.errors import ConfigError, UserError
from worldmodel.vit import VisionTransformer, ViTConfig
from worldmodel.world_model import WorldModel, latents_from_tokens

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
    from worldmodel.vit import normalize_images

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
    with pytest.raises(ConfigError, match="ac.state_update"):
        WorldModel(wm.encoder, wm.predictor, latent_pool=2, state_update="teleport")
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
    assert cache.steps == 2
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
    wm = make_wm(action_low=[-0.1] * 7, action_high=[0.1] * 7)
    assert wm.state_update == "integrate"
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
