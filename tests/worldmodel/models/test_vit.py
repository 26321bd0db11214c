"""Video ViT encoder: shapes, masking, official state-dict layout, single-image input, config checks."""

from __future__ import annotations

import pytest
import torch

from worldmodel.common.errors import UserError
from worldmodel.models.rope import grid_positions, rotate
from worldmodel.models.vit import VisionTransformer, ViTConfig, normalize_images

OFFICIAL_DEPTH1_KEYS = [
    "patch_embed.proj.weight",
    "patch_embed.proj.bias",
    "blocks.0.norm1.weight",
    "blocks.0.norm1.bias",
    "blocks.0.attn.qkv.weight",
    "blocks.0.attn.qkv.bias",
    "blocks.0.attn.proj.weight",
    "blocks.0.attn.proj.bias",
    "blocks.0.norm2.weight",
    "blocks.0.norm2.bias",
    "blocks.0.mlp.fc1.weight",
    "blocks.0.mlp.fc1.bias",
    "blocks.0.mlp.fc2.weight",
    "blocks.0.mlp.fc2.bias",
    "norm.weight",
    "norm.bias",
]


def tiny(**kw) -> VisionTransformer:
    torch.manual_seed(0)
    base = dict(embed_dim=48, depth=2, num_heads=2, mlp_hidden=96, patch_size=8, img_size=32)
    return VisionTransformer(ViTConfig(**(base | kw))).eval()


def test_shapes_and_token_order() -> None:
    model = tiny()
    x = torch.randn(2, 3, 4, 32, 24)  # non-square works: grid (2, 4, 3)
    out = model(x)
    assert out.shape == (2, 2 * 4 * 3, 48)
    # the final LayerNorm is applied: per-token mean ~0 / var ~1 up to the affine (identity at init)
    assert out.mean(-1).abs().max() < 1e-4


def test_masked_forward_with_all_indices_equals_full() -> None:
    model = tiny()
    x = torch.randn(2, 3, 4, 32, 32)
    full = model(x)
    n = full.shape[1]
    perm = torch.stack([torch.randperm(n), torch.randperm(n)])
    with torch.no_grad():
        torch.testing.assert_close(model(x, torch.arange(n).expand(2, n)), full, atol=1e-5, rtol=1e-5)
        # any order of the same tokens gives the same features per token (RoPE uses true positions)
        shuffled = model(x, perm)
        torch.testing.assert_close(
            shuffled, torch.stack([full[b, perm[b]] for b in range(2)]), atol=1e-5, rtol=1e-5
        )
        # a list of masks runs as batch chunks
        sub = torch.tensor([[0, 3, 9], [1, 2, 4]])
        both = model(x, [sub, sub.flip(1)])
        assert both.shape == (4, 3, 48)
        torch.testing.assert_close(both[:2], model(x, sub))


def test_state_dict_matches_official_names_and_shapes() -> None:
    model = VisionTransformer(ViTConfig(embed_dim=48, depth=1, num_heads=2, mlp_hidden=96))
    assert list(model.state_dict()) == OFFICIAL_DEPTH1_KEYS
    with torch.device("meta"):
        g = VisionTransformer(ViTConfig.preset("vitg", depth=1))
        h = VisionTransformer(ViTConfig.preset("vith", depth=1))
    sd = g.state_dict()
    assert sd["patch_embed.proj.weight"].shape == (1408, 3, 2, 16, 16)
    assert sd["blocks.0.attn.qkv.weight"].shape == (3 * 1408, 1408)
    assert sd["blocks.0.mlp.fc1.weight"].shape == (6144, 1408)
    assert g.cfg.head_dim == 64 and h.cfg.head_dim == 80
    assert ViTConfig.preset("vitl").depth == 24 and ViTConfig.preset("vitg").depth == 40


def test_single_image_is_duplicated_into_one_tubelet() -> None:
    model = tiny()
    img = torch.randn(2, 3, 32, 32)
    clip = img.unsqueeze(2).repeat(1, 1, 2, 1, 1)
    with torch.no_grad():
        out = model(img)
        assert out.shape == (2, 16, 48)
        torch.testing.assert_close(out, model(clip))
        torch.testing.assert_close(model(img.unsqueeze(2)), out)


def test_attention_uses_official_head_layout() -> None:
    """Recompute block 0's attention by hand: qkv split as (3, heads, head_dim), RoPE on q and k."""
    model = tiny(depth=1)
    x = torch.randn(1, 3, 2, 16, 16)
    blk = model.blocks[0]
    with torch.no_grad():
        tokens = model.patch_embed(x)
        y = blk.norm1(tokens)
        qkv = blk.attn.qkv(y).reshape(1, 4, 3, 2, 24).permute(2, 0, 3, 1, 4)
        pos = grid_positions(1, 2, 2)
        q, k, v = rotate(qkv[0], pos), rotate(qkv[1], pos), qkv[2]
        att = torch.softmax(q @ k.transpose(-1, -2) / 24**0.5, dim=-1) @ v
        h = tokens + blk.attn.proj(att.transpose(1, 2).reshape(1, 4, 48))
        h = h + blk.mlp(blk.norm2(h))
        torch.testing.assert_close(model(x), model.norm(h), atol=1e-5, rtol=1e-5)


def test_gradient_checkpointing_same_grads() -> None:
    x = torch.randn(2, 3, 2, 16, 16)
    grads = []
    for flag in (False, True):
        model = tiny(grad_checkpointing=flag).train()
        model(x).square().mean().backward()
        grads.append(model.patch_embed.proj.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1])


def test_bad_inputs_and_configs_are_one_line_errors() -> None:
    model = tiny()
    with pytest.raises(UserError, match="multiples of patch 8"):
        model(torch.randn(1, 3, 2, 30, 32))
    with pytest.raises(UserError, match=r"expected \[B,3,T,H,W\]"):
        model(torch.randn(3, 32, 32))
    with pytest.raises(UserError, match="encoder.num_heads"):
        ViTConfig(embed_dim=100, num_heads=3).validate()
    with pytest.raises(UserError, match="unknown encoder size 'huge'"):
        ViTConfig.preset("huge")


def test_normalize_images() -> None:
    img = torch.full((2, 4, 4, 3), 255, dtype=torch.uint8)
    out = normalize_images(img)
    assert out.shape == (2, 3, 4, 4)
    assert out[0, 0, 0, 0].item() == pytest.approx((1 - 0.485) / 0.229, rel=1e-5)


def test_out_layers_return_normed_intermediate_blocks() -> None:
    model = tiny(depth=3)
    x = torch.randn(1, 3, 2, 16, 16)
    with torch.no_grad():
        outs = model(x, out_layers=[0, -1])
        assert isinstance(outs, list) and len(outs) == 2
        torch.testing.assert_close(outs[1], model(x))
        first = tiny(depth=1)
        first.load_state_dict(
            {k: v for k, v in model.state_dict().items() if not k.startswith(("blocks.1", "blocks.2"))}
        )
        torch.testing.assert_close(outs[0], first(x))
        masked = model(x, torch.tensor([[0, 2]]), out_layers=[1])
        assert masked[0].shape == (1, 2, 48)
    with pytest.raises(UserError, match="out_layers"):
        model(x, out_layers=[3])


def test_only_rope_encoders() -> None:
    with pytest.raises(UserError, match="encoder.use_rope"):
        ViTConfig(use_rope=False).validate()
