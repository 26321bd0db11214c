"""AC predictor: official layout, block-causality, KV cache == full forward, loss, import, config."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from worldmodel.common.errors import ConfigError, UserError
from worldmodel.models.ac_import import ACCheckpointError, infer_config, load_vjepa2_ac
from worldmodel.models.ac_predictor import (
    ACPredictor,
    ACPredictorConfig,
    build_ac_predictor,
    build_block_causal_mask,
)
from worldmodel.training.ac_loss import ac_loss

OFFICIAL_KEYS_DEPTH1 = {
    "predictor_embed.weight",
    "predictor_embed.bias",
    "action_encoder.weight",
    "action_encoder.bias",
    "state_encoder.weight",
    "state_encoder.bias",
    "extrinsics_encoder.weight",
    "extrinsics_encoder.bias",
    "predictor_blocks.0.norm1.weight",
    "predictor_blocks.0.norm1.bias",
    "predictor_blocks.0.attn.qkv.weight",
    "predictor_blocks.0.attn.qkv.bias",
    "predictor_blocks.0.attn.proj.weight",
    "predictor_blocks.0.attn.proj.bias",
    "predictor_blocks.0.norm2.weight",
    "predictor_blocks.0.norm2.bias",
    "predictor_blocks.0.mlp.fc1.weight",
    "predictor_blocks.0.mlp.fc1.bias",
    "predictor_blocks.0.mlp.fc2.weight",
    "predictor_blocks.0.mlp.fc2.bias",
    "predictor_norm.weight",
    "predictor_norm.bias",
    "predictor_proj.weight",
    "predictor_proj.bias",
}


def tiny_cfg(**kw) -> ACPredictorConfig:
    base = dict(embed_dim=24, width=48, depth=2, num_heads=2, grid_h=2, grid_w=3, max_frames=6)
    return ACPredictorConfig(**(base | kw))


def tiny(**kw) -> ACPredictor:
    torch.manual_seed(0)
    model = ACPredictor(tiny_cfg(**kw)).eval()
    with torch.no_grad():  # larger than the init so that every path visibly matters
        for p in model.parameters():
            p.normal_(0, 0.2)
    return model


def inputs(model: ACPredictor, b: int = 2, t: int = 4, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    c = model.cfg
    z = torch.randn(b, t, c.frame_tokens, c.embed_dim, generator=g)
    a = torch.randn(b, t, c.action_dim, generator=g)
    s = torch.randn(b, t, c.state_dim, generator=g)
    e = torch.randn(b, t, c.extrinsics_dim, generator=g) if c.use_extrinsics else None
    return z, a, s, e


def test_shapes_and_official_keys() -> None:
    model = tiny(depth=1)
    z, a, s, _ = inputs(model)
    assert model(z, a, s).shape == z.shape
    sd = model.state_dict()
    assert set(sd) == OFFICIAL_KEYS_DEPTH1  # the mask buffer is not persistent
    assert sd["extrinsics_encoder.weight"].shape == (48, 6)  # official: action_dim - 1
    assert sd["predictor_proj.weight"].shape == (24, 48)
    ext = tiny(use_extrinsics=True)
    z, a, s, e = inputs(ext)
    assert ext(z, a, s, e).shape == z.shape
    with pytest.raises(UserError, match="extrinsics"):
        ext(z, a, s)
    with pytest.raises(UserError, match="actions"):
        model(z, a[:, :-1], s)


@pytest.mark.parametrize("extrinsics", [False, True])
def test_block_causality(extrinsics: bool) -> None:
    model = tiny(use_extrinsics=extrinsics)
    z, a, s, e = inputs(model, t=5)
    base = model(z, a, s, e)
    for t in range(4):
        z2, a2, s2 = z.clone(), a.clone(), s.clone()
        z2[:, t + 1] += 1.0
        a2[:, t + 1] += 1.0
        s2[:, t + 1] -= 1.0
        e2 = None if e is None else e.clone()
        if e2 is not None:
            e2[:, t + 1] += 1.0
        out = model(z2, a2, s2, e2)
        torch.testing.assert_close(out[:, : t + 1], base[:, : t + 1], atol=1e-6, rtol=0)
        assert (out[:, t + 1] - base[:, t + 1]).abs().max() > 1e-3
    # the action and state of step t do influence slot t (same block)
    a3 = a.clone()
    a3[:, 2] += 1.0
    assert (model(z, a3, s, e)[:, 2] - base[:, 2]).abs().max() > 1e-3


@pytest.mark.parametrize("kw", [{}, {"predict_delta": True}, {"use_extrinsics": True, "grid_w": 2}])
def test_kv_cached_step_equals_full_forward(kw: dict) -> None:
    model = tiny(**kw)
    z, a, s, e = inputs(model, t=5)
    full = model(z, a, s, e)
    cache = None
    for t in range(5):
        et = None if e is None else e[:, t]
        pred, cache = model.step(z[:, t], a[:, t], s[:, t], cache, et)
        torch.testing.assert_close(pred, full[:, t], atol=1e-5, rtol=0)
    assert cache.steps == 5
    # prefill 3 steps, then 2 more in one cached call
    part, cache = model.prefill(z[:, :3], a[:, :3], s[:, :3], None if e is None else e[:, :3])
    rest, cache = model.run(z[:, 3:], a[:, 3:], s[:, 3:], None if e is None else e[:, 3:], cache=cache)
    torch.testing.assert_close(torch.cat([part, rest], 1), full, atol=1e-5, rtol=0)
    # a truncated cache is the cache of the prefix
    _, cache = model.prefill(z, a, s, e)
    pred, _ = model.step(z[:, 1], a[:, 1], s[:, 1], cache.truncate(1), None if e is None else e[:, 1])
    torch.testing.assert_close(pred, full[:, 1], atol=1e-5, rtol=0)


def test_mask_built_only_for_max_frames() -> None:
    model = tiny(max_frames=3)
    k = model.cfg.tokens_per_step
    assert k == 2 + 6
    assert model.attn_mask.shape == (3 * k, 3 * k)
    assert model.attn_mask.dtype == torch.bool
    torch.testing.assert_close(model.attn_mask[:k, k:], torch.zeros(k, 2 * k, dtype=torch.bool))
    assert bool(model.attn_mask[2 * k :, :].all())
    assert torch.equal(build_block_causal_mask(2, 3)[:, :3].all(dim=1), torch.ones(6, dtype=torch.bool))
    z, a, s, _ = inputs(model, t=4)
    with pytest.raises(UserError, match="max_frames"):
        model(z, a, s)
    cache = None  # the cached path needs no mask: rollouts may run past max_frames
    for t in range(4):
        _, cache = model.step(z[:, t], a[:, t], s[:, t], cache)
    assert cache.steps == 4


def _dynamics_batch(gen: torch.Generator, proj: tuple[torch.Tensor, torch.Tensor], b: int, t: int = 4):
    """Latents that are a fixed linear function of a 2-D position integrating the actions."""
    p0 = torch.rand(b, 2, generator=gen) * 2 - 1
    a = torch.zeros(b, t - 1, 7)
    a[..., :2] = torch.rand(b, t - 1, 2, generator=gen) * 2 - 1
    pos = torch.cat([p0[:, None], p0[:, None] + a[..., :2].cumsum(1)], 1)
    z = torch.einsum("btk,nkd->btnd", pos, proj[0]) + proj[1]
    s = torch.zeros(b, t, 7)
    s[..., :2] = pos
    return z, a, s


def test_loss_decreases_below_copy_baseline() -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    proj = (torch.randn(4, 2, 16, generator=gen), torch.randn(4, 16, generator=gen) * 0.5)
    model = ACPredictor(ACPredictorConfig(embed_dim=16, width=32, depth=2, num_heads=2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    hist = []
    for _ in range(60):
        z, a, s = _dynamics_batch(gen, proj, 32)
        out = ac_loss(model, z, a, s, auto_steps=2)
        assert set(out) == {"loss", "tf_loss", "ar_loss", "copy_loss"}
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        hist.append([out[k].item() for k in ("loss", "tf_loss", "ar_loss", "copy_loss")])
    first, last = torch.tensor(hist[:3]).mean(0), torch.tensor(hist[-5:]).mean(0)
    assert last[0] < 0.4 * first[0]
    assert last[1] < 0.8 * last[3], f"teacher forcing {last[1]:.3f} vs copy-last-frame {last[3]:.3f}"
    assert last[2] < last[3]


def test_ac_loss_matches_official_recompute() -> None:
    """The cached rollout term equals the official recompute-the-growing-sequence formulation."""
    model = tiny()
    z, a, s, _ = inputs(model, t=4)
    out = ac_loss(model, z, a[:, :3], s, auto_steps=3)
    ln = torch.nn.functional.layer_norm
    tf = ln(model(z[:, :3], a[:, :3], s[:, :3]), (24,))
    seq = [z[:, 0], tf[:, 0]]
    for n in range(1, 3):
        nxt = model(torch.stack(seq, 1), a[:, : n + 1], s[:, : n + 1])[:, -1]
        seq.append(ln(nxt, (24,)))
    target = ln(z, (24,))
    torch.testing.assert_close(out["tf_loss"], (tf - target[:, 1:]).abs().mean())
    torch.testing.assert_close(out["ar_loss"], (torch.stack(seq[1:], 1) - target[:, 1:]).abs().mean())
    torch.testing.assert_close(out["copy_loss"], (target[:, :-1] - target[:, 1:]).abs().mean())
    squared = ac_loss(model, z, a[:, :3], s, auto_steps=3, loss_exp=2.0)  # train.loss_exp=2
    torch.testing.assert_close(squared["tf_loss"], (tf - target[:, 1:]).pow(2).mean() / 2)
    with pytest.raises(UserError):
        ac_loss(model, z[:, :1], a[:, :1], s[:, :1])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("width", 0),
        ("num_heads", 5),
        ("depth", 1.5),
        ("grid_h", 0),
        ("max_frames", 100000),
        ("mlp_ratio", -1.0),
        ("rope_tiling", "spiral"),
        ("predict_delta", "yes"),
    ],
)
def test_config_errors_are_one_line(field: str, value: object) -> None:
    cfg = tiny_cfg(**{field: value})
    with pytest.raises(ConfigError) as err:
        cfg.validate()
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"config key 'ac.{field}': expected ")
    assert ", got " in msg


def test_presets() -> None:
    official = ACPredictorConfig.preset("vitg_ac")
    assert (official.embed_dim, official.width, official.depth, official.num_heads) == (1408, 1024, 24, 16)
    assert (official.grid_h, official.grid_w, official.action_dim, official.state_dim) == (16, 16, 7, 7)
    official.validate()
    model = build_ac_predictor("tiny", embed_dim=32)
    assert (model.cfg.width, model.cfg.depth, model.cfg.num_heads) == (128, 4, 4)
    with pytest.raises(ConfigError):
        ACPredictorConfig.preset("huge")
    with pytest.raises(ConfigError):
        ACPredictorConfig.preset("tiny", colour=1)


# ----------------------------------------------------------------------------- official import


def _save_official(model: ACPredictor, path, mutate=None) -> None:
    state = {f"module.{k}": v.clone() for k, v in model.state_dict().items()}
    if mutate:
        mutate(state)
    torch.save({"predictor": state, "encoder": {}, "epoch": 3}, path)


def test_load_official_layout_strict(tmp_path) -> None:
    model = tiny(depth=2, width=128, num_heads=2)  # head dim 64: inference finds num_heads=2
    path = tmp_path / "vjepa2-ac.pt"
    _save_official(model, path)
    loaded = load_vjepa2_ac(path, config=model.cfg)
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
    z, a, s, _ = inputs(model)
    torch.testing.assert_close(loaded.eval()(z, a, s), model(z, a, s))
    inferred = load_vjepa2_ac(path)  # no config: sizes from the weights, official head dim / grid
    c = inferred.cfg
    assert (c.embed_dim, c.width, c.depth, c.num_heads, c.action_dim, c.mlp_ratio) == (24, 128, 2, 2, 7, 4.0)
    assert (c.grid_h, c.grid_w) == (16, 16)
    assert infer_config(model.state_dict(), base=model.cfg) == model.cfg


def test_load_broken_state_dict_names_every_key(tmp_path) -> None:
    model = tiny()
    path = tmp_path / "broken.pt"

    def mutate(state: dict) -> None:
        del state["module.predictor_blocks.1.mlp.fc2.bias"]
        state["module.predictor_blocks.0.attn.q_norm.weight"] = torch.ones(3)
        state["module.action_encoder.bias"] = torch.zeros(5)

    _save_official(model, path, mutate)
    with pytest.raises(ACCheckpointError) as err:
        load_vjepa2_ac(path, config=model.cfg)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg
    assert "missing keys: predictor_blocks.1.mlp.fc2.bias" in msg
    assert "unexpected keys: predictor_blocks.0.attn.q_norm.weight" in msg
    assert "wrong shapes: " in msg and "action_encoder.bias [5] (expected [48])" in msg
    assert isinstance(err.value, UserError)
    with pytest.raises(ACCheckpointError, match="no 'target' entry"):
        load_vjepa2_ac(path, key="target")
    with pytest.raises(ACCheckpointError, match="no such checkpoint"):
        load_vjepa2_ac(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ACCheckpointError, match="cannot read"):
        load_vjepa2_ac(tmp_path / "junk.pt")


# ----------------------------------------------------------------------------- official forward


def _official_rotate(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """The official `rotate_queries_or_keys` (with its `repeat` frequency tiling)."""
    d = x.shape[-1]
    omega = 1.0 / 10000 ** (torch.arange(d // 2, dtype=x.dtype) / (d / 2.0))
    freq = pos[..., None] * omega
    sin, cos = freq.sin().repeat(1, 2), freq.cos().repeat(1, 2)
    y = x.unflatten(-1, (-1, 2))
    y = torch.stack((-y[..., 1], y[..., 0]), dim=-1).flatten(-2)
    return x * cos + y * sin


def _official_forward(model: ACPredictor, z, a, s) -> torch.Tensor:
    """An independent restatement of the official VisionTransformerPredictorAC + ACRoPEAttention
    forward: separate qkv of action/state tokens with time-only RoPE, 3-D RoPE of the frame tokens
    (width positions scaled by grid_h / grid_w), merge as [a, s, frame] per step, block mask."""
    c = model.cfg
    b, t, n, _ = z.shape
    gh, gw, k = c.grid_h, c.grid_w, 2
    nh, hd = c.num_heads, c.head_dim
    dd = 2 * ((hd // 3) // 2)
    ids = torch.arange(t * n)
    fr, hh = ids // n, (ids % n) // gw
    ww = (ids % n) % gw
    frame_pos = (fr.float(), hh.float() * gh / gh, ww.float() * gh / gw)
    x = model.predictor_embed(z)
    x = torch.cat([model.action_encoder(a)[:, :, None], model.state_encoder(s)[:, :, None], x], 2).flatten(
        1, 2
    )
    mask = build_block_causal_mask(t, k + n)
    for blk in model.predictor_blocks:
        y = blk.norm1(x).view(b, t, k + n, -1)
        cq, ck, cv = [], [], []
        for i in range(k):
            q, kk, v = blk.attn.qkv(y[:, :, i]).unflatten(-1, (3, nh, hd)).permute(2, 0, 3, 1, 4)
            tpos = torch.arange(t).float()
            cq.append(torch.cat([_official_rotate(q[..., :dd], tpos), q[..., dd:]], -1))
            ck.append(torch.cat([_official_rotate(kk[..., :dd], tpos), kk[..., dd:]], -1))
            cv.append(v)
        q, kk, v = blk.attn.qkv(y[:, :, k:].flatten(1, 2)).unflatten(-1, (3, nh, hd)).permute(2, 0, 3, 1, 4)
        rq = [_official_rotate(q[..., i * dd : (i + 1) * dd], p) for i, p in enumerate(frame_pos)]
        rk = [_official_rotate(kk[..., i * dd : (i + 1) * dd], p) for i, p in enumerate(frame_pos)]
        q, kk = torch.cat([*rq, q[..., 3 * dd :]], -1), torch.cat([*rk, kk[..., 3 * dd :]], -1)

        def merge(frames, conds):
            conds = torch.stack(conds, 3)  # [b, heads, t, k, hd]
            return torch.cat([conds, frames.view(b, nh, t, n, hd)], 3).flatten(2, 3)

        out = F.scaled_dot_product_attention(merge(q, cq), merge(kk, ck), merge(v, cv), attn_mask=mask)
        x = x + blk.attn.proj(out.transpose(1, 2).flatten(2))
        x = x + blk.mlp(blk.norm2(x))
    x = x.view(b, t, k + n, -1)[:, :, k:]
    return model.predictor_proj(model.predictor_norm(x))


@pytest.mark.parametrize(("grid_h", "grid_w", "width", "heads"), [(2, 3, 48, 2), (4, 4, 96, 1)])
def test_matches_official_forward(grid_h: int, grid_w: int, width: int, heads: int) -> None:
    model = tiny(grid_h=grid_h, grid_w=grid_w, width=width, num_heads=heads)
    z, a, s, _ = inputs(model, t=4)
    torch.testing.assert_close(model(z, a, s), _official_forward(model, z, a, s), atol=1e-5, rtol=0)
