"""Checkpoints: atomic safetensors, our encoder export, official V-JEPA 2 import and its errors."""

from __future__ import annotations

import pathlib
from pathlib import Path

import pytest
import torch

from worldmodel.common.errors import UserError
from worldmodel.models.checkpoints import (
    CheckpointError,
    load_encoder,
    load_safetensors,
    load_vjepa2,
    save_encoder,
    save_safetensors,
)
from worldmodel.models.vit import VisionTransformer, ViTConfig


def tiny_encoder(seed: int = 0, depth: int = 2) -> VisionTransformer:
    torch.manual_seed(seed)
    return VisionTransformer(ViTConfig.preset("tiny", depth=depth)).eval()


def official_checkpoint(path: Path, encoder: VisionTransformer, target: VisionTransformer) -> None:
    """What the official trainer writes: DDP + multi-mask wrapper prefixes and an unused pos_embed."""

    def wrap(model: VisionTransformer) -> dict[str, torch.Tensor]:
        sd = {f"module.backbone.{k}": v.clone() for k, v in model.state_dict().items()}
        sd["module.backbone.pos_embed"] = torch.zeros(1, 256, model.embed_dim)
        return sd

    torch.save({"encoder": wrap(encoder), "target_encoder": wrap(target), "epoch": 3}, path)


def test_save_and_load_safetensors_atomically(tmp_path: Path) -> None:
    a = torch.arange(12.0).reshape(3, 4)
    state = {"a": a, "view": a[1], "b": torch.ones(2, dtype=torch.int64)}
    out = save_safetensors(state, tmp_path / "sub" / "w.safetensors", {"step": "7"})
    assert out.is_file() and [p.name for p in out.parent.iterdir()] == ["w.safetensors"]
    loaded, meta = load_safetensors(out)
    assert meta == {"step": "7"}
    torch.testing.assert_close(loaded["view"], a[1])
    assert loaded["b"].dtype == torch.int64
    with pytest.raises(TypeError):
        save_safetensors(state, tmp_path / "x.safetensors", {"step": 7})  # type: ignore[dict-item]


def test_failed_save_keeps_the_old_file(tmp_path: Path) -> None:
    path = save_safetensors({"a": torch.ones(2)}, tmp_path / "w.safetensors")
    with pytest.raises(Exception):  # noqa: B017 - any failure inside the writer
        save_safetensors({"a": object()}, path)  # type: ignore[dict-item]
    assert torch.equal(load_safetensors(path)[0]["a"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]


def test_encoder_export_roundtrip(tmp_path: Path) -> None:
    enc = tiny_encoder(depth=1)
    save_encoder(enc, tmp_path / "encoder.safetensors", {"run": "t"})
    back, meta = load_encoder(tmp_path / "encoder.safetensors")
    assert meta["run"] == "t" and back.cfg == enc.cfg
    x = torch.randn(1, 3, 2, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(back(x), enc(x))


def test_official_layout_checkpoint_loads_and_matches(tmp_path: Path) -> None:
    enc, tgt = tiny_encoder(0), tiny_encoder(1)
    path = tmp_path / "vjepa2.pt"
    official_checkpoint(path, enc, tgt)
    x = torch.randn(2, 3, 4, 64, 64)
    loaded = load_vjepa2(path)  # target_encoder by default, size inferred
    assert loaded.cfg.embed_dim == 192 and loaded.cfg.depth == 2 and loaded.cfg.num_heads == 3
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), tgt(x))
        torch.testing.assert_close(load_vjepa2(path, key="encoder", size="tiny", depth=2)(x), enc(x))


def test_corrupted_keys_give_one_error_listing_them(tmp_path: Path) -> None:
    sd = {f"module.backbone.{k}": v for k, v in tiny_encoder(depth=1).state_dict().items()}
    del sd["module.backbone.blocks.0.norm2.weight"]
    sd["module.backbone.blocks.0.attn.extra"] = torch.zeros(3)
    sd["module.backbone.norm.bias"] = torch.zeros(7)
    path = tmp_path / "bad.pt"
    torch.save({"target_encoder": sd}, path)
    with pytest.raises(CheckpointError) as info:
        load_vjepa2(path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg
    assert "missing keys: blocks.0.norm2.weight" in msg
    assert "unexpected keys: blocks.0.attn.extra" in msg
    assert "norm.bias [7] (expected [192])" in msg


def test_given_size_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "tiny.pt"
    official_checkpoint(path, tiny_encoder(depth=1), tiny_encoder(depth=1))
    with pytest.raises(CheckpointError, match="wrong shapes: patch_embed.proj.weight"):
        load_vjepa2(path, size="small", depth=1)


def test_unreadable_inputs_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_vjepa2(tmp_path / "nope.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="is not a PyTorch checkpoint"):
        load_vjepa2(junk)
    torch.save({"opt": {"lr": 1.0}}, tmp_path / "nokey.pt")
    with pytest.raises(CheckpointError, match=r"no 'target_encoder' weights \(top-level keys: opt\)"):
        load_vjepa2(tmp_path / "nokey.pt")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_safetensors(tmp_path / "junk.safetensors")
    assert issubclass(CheckpointError, UserError)


class _Touch:
    """A pickle payload that would create a file when unpickled by a full (unsafe) load."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.target),))


def test_pickle_needing_code_execution_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"target_encoder": {"x": _Touch(marker)}}, path)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="refused") as info:
        load_vjepa2(path)
    assert "\n" not in str(info.value)
    assert not marker.exists()


def test_save_safetensors_accepts_a_module(tmp_path: Path) -> None:
    enc = tiny_encoder(depth=1)
    save_safetensors(enc, tmp_path / "m.safetensors", {"k": "v"})
    state, meta = load_safetensors(tmp_path / "m.safetensors")
    assert meta == {"k": "v"} and set(state) == set(enc.state_dict())
    torch.testing.assert_close(state["norm.weight"], enc.norm.weight.detach())


def test_equal_weights_and_metadata_save_to_equal_bytes(tmp_path) -> None:
    """safetensors writes the metadata keys in another order on every save; ours are sorted, so a
    retrained run with equal weights has equal files (and reuses its stored benchmark points)."""
    metadata = {f"key{i}": f'value {i} \u00e9 "quoted"' for i in range(8)}
    state = {"b": torch.arange(3.0), "a": torch.ones(2, 2)}
    files = [save_safetensors(state, tmp_path / f"w{i}.safetensors", metadata) for i in range(5)]
    assert len({f.read_bytes() for f in files}) == 1
    again, read_metadata = load_safetensors(files[0])
    assert read_metadata == metadata and all(torch.equal(again[k], state[k]) for k in state)
