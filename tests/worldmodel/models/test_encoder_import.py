"""Released encoders into run folders: the Hugging Face layout against transformers' own VJEPA2Model,
the official layout against `load_vjepa2`, the streamed writer, and the memory-mapped reads."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.worldmodel.models.test_checkpoints import official_checkpoint, tiny_encoder
from worldmodel.models.checkpoints import (
    CheckpointError,
    LazyTensors,
    load_encoder,
    load_safetensors,
    load_vjepa2,
    safetensors_metadata,
    weights_hash,
    write_safetensors_streamed,
)
from worldmodel.models.encoder_import import NORMALISATION, hf_names, import_encoder

TINY_HF = dict(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    crop_size=32,
    patch_size=8,
    frames_per_clip=4,
    tubelet_size=2,
    pred_hidden_size=32,
    pred_num_hidden_layers=1,
    pred_num_attention_heads=2,
    num_pooler_layers=1,
)


def tiny_hf_model(seed: int = 0, **overrides):
    """A randomly initialised transformers `VJEPA2Model` (weights widened so every path matters)."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    model = transformers.VJEPA2Model(transformers.VJEPA2Config(**(TINY_HF | overrides))).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    return model


def save_hf(folder: Path, seed: int = 0, **kwargs) -> object:
    """What a user downloads: `save_pretrained` writes config.json + model.safetensors."""
    model = tiny_hf_model(seed)
    model.save_pretrained(folder, **kwargs)
    return model


def transformers_tokens(model, clip: torch.Tensor) -> torch.Tensor:
    """transformers' encoder output (last hidden state, before its predictor) of `[B,T,C,H,W]`."""
    with torch.no_grad():
        return model(pixel_values_videos=clip, skip_predictor=True).last_hidden_state


@pytest.mark.parametrize("frames", [1, 2, 4])
def test_hugging_face_layout_matches_transformers(tmp_path: Path, frames: int) -> None:
    model = save_hf(tmp_path / "hf")
    result = import_encoder(tmp_path / "hf", tmp_path / "run")
    encoder, metadata = load_encoder(result.path)
    clip = torch.randn(2, frames, 3, 32, 32, generator=torch.Generator().manual_seed(frames))
    with torch.no_grad():
        ours = encoder(clip.permute(0, 2, 1, 3, 4))
    torch.testing.assert_close(ours, transformers_tokens(model, clip), atol=1e-4, rtol=0)
    c = encoder.cfg
    assert (c.embed_dim, c.depth, c.num_heads, c.mlp_hidden) == (64, 2, 2, 256)
    assert (c.patch_size, c.tubelet_size, c.img_size) == (8, 2, 32)
    assert metadata["weights_hash"] == weights_hash(encoder.state_dict())
    assert (metadata["image_size"], metadata["patch_size"], metadata["tubelet_size"]) == ("32", "8", "2")
    assert metadata["normalisation"] == NORMALISATION and metadata["size"] == "custom"
    assert "Hugging Face layout" in metadata["layout"]


def test_sharded_download_and_single_weight_file(tmp_path: Path) -> None:
    """A sharded download (index + shards) and the bare model.safetensors beside config.json."""
    model = save_hf(tmp_path / "hf", max_shard_size="40KB")
    assert (tmp_path / "hf" / "model.safetensors.index.json").is_file()
    sharded = load_encoder(import_encoder(tmp_path / "hf", tmp_path / "a").path)[0]
    save_hf(tmp_path / "one")
    single = load_encoder(import_encoder(tmp_path / "one" / "model.safetensors", tmp_path / "b").path)[0]
    clip = torch.randn(1, 2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(sharded(clip.permute(0, 2, 1, 3, 4)), transformers_tokens(model, clip))
        torch.testing.assert_close(single(clip.permute(0, 2, 1, 3, 4)), transformers_tokens(model, clip))


def test_pytorch_model_bin_download_and_classification_wrapper(tmp_path: Path) -> None:
    """Older downloads hold pytorch_model.bin; VJEPA2ForVideoClassification nests the model in `vjepa2.`."""
    model = save_hf(tmp_path / "hf")
    (tmp_path / "hf" / "model.safetensors").unlink()
    wrapped = {f"vjepa2.{k}": v for k, v in model.state_dict().items()} | {
        "classifier.weight": torch.zeros(3, 64)
    }
    torch.save(wrapped, tmp_path / "hf" / "pytorch_model.bin")
    result = import_encoder(tmp_path / "hf", tmp_path / "run")
    assert result.layout == "Hugging Face layout, checkpoint pytorch_model.bin [state dict]"
    clip = torch.randn(1, 2, 3, 32, 32)
    with torch.no_grad():
        ours = load_encoder(result.path)[0](clip.permute(0, 2, 1, 3, 4))
    torch.testing.assert_close(ours, transformers_tokens(model, clip), atol=1e-4, rtol=0)


def test_hf_names_fuse_qkv_and_skip_the_predictor() -> None:
    keys = [
        "encoder.layer.0.attention.query.weight",
        "encoder.layer.0.attention.key.weight",
        "encoder.layer.0.attention.value.weight",
        "encoder.layer.0.attention.query.bias",  # a triple with pieces missing stays as it is
        "encoder.layernorm.weight",
        "encoder.layer.0.attention.rotary.weight",  # unknown: kept, reported as unexpected later
        "predictor.embeddings.mask_tokens",
    ]
    renames, fused = hf_names(keys)
    assert fused == {"blocks.0.attn.qkv.weight": keys[:3]}
    assert renames == {keys[3]: keys[3], keys[4]: "norm.weight", keys[5]: keys[5]}


def test_official_layout_imports_like_load_vjepa2(tmp_path: Path) -> None:
    enc, tgt = tiny_encoder(0, depth=2), tiny_encoder(1, depth=2)
    official_checkpoint(tmp_path / "vitl.pt", enc, tgt)
    result = import_encoder(tmp_path / "vitl.pt", tmp_path / "run")
    loaded, metadata = load_encoder(result.path)
    assert loaded.cfg.img_size == 256 and metadata["size"] == "custom"  # tiny width, depth 2
    assert metadata["layout"] == "official layout, checkpoint vitl.pt [target_encoder]"
    x = torch.randn(1, 3, 2, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), load_vjepa2(tmp_path / "vitl.pt")(x))
        torch.testing.assert_close(loaded(x), tgt(x))
    other = import_encoder(tmp_path / "vitl.pt", tmp_path / "ctx", key="encoder", img_size=128)
    assert other.cfg.img_size == 128
    with torch.no_grad():
        torch.testing.assert_close(load_encoder(other.path)[0](x), enc(x))


def test_the_ac_checkpoints_encoder_entry_is_found(tmp_path: Path) -> None:
    """vjepa2-ac-vitg.pt holds `encoder` and `predictor`, no `target_encoder`."""
    enc = tiny_encoder(2, depth=1)
    torch.save(
        {"encoder": {f"module.backbone.{k}": v for k, v in enc.state_dict().items()}, "predictor": {}},
        tmp_path / "ac.pt",
    )
    result = import_encoder(tmp_path / "ac.pt", tmp_path / "run")
    assert result.layout.endswith("[encoder]") and result.size == "custom"
    x = torch.randn(1, 3, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(load_encoder(result.path)[0](x), enc(x))


def test_checkpoints_are_read_memory_mapped_without_code(tmp_path: Path, monkeypatch) -> None:
    official_checkpoint(tmp_path / "vitl.pt", tiny_encoder(depth=1), tiny_encoder(depth=1))
    calls = []
    real = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    import_encoder(tmp_path / "vitl.pt", tmp_path / "run")
    assert calls == [{"map_location": "cpu", "weights_only": True, "mmap": True}]


def test_streamed_writer_is_a_safetensors_file_with_the_weights_hash(tmp_path: Path) -> None:
    state = {
        "b": torch.randn(3, 5, dtype=torch.bfloat16),
        "a": torch.arange(6.0).reshape(2, 3),
        "steps": torch.tensor([1, 2], dtype=torch.int64),
        "scalar": torch.tensor(2.5),
    }
    digest = write_safetensors_streamed(
        LazyTensors.from_tensors(state), tmp_path / "w.safetensors", {"k": "v"}
    )
    loaded, metadata = load_safetensors(tmp_path / "w.safetensors")
    assert metadata == {"k": "v", "weights_hash": digest} == safetensors_metadata(tmp_path / "w.safetensors")
    assert loaded["b"].dtype == torch.float32 and loaded["steps"].dtype == torch.int64
    torch.testing.assert_close(loaded["b"], state["b"].float())
    assert loaded["scalar"].shape == () and digest == weights_hash(loaded)
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]


def test_streamed_writer_leaves_nothing_when_a_read_fails(tmp_path: Path) -> None:
    def load(name: str) -> torch.Tensor:
        raise OSError("disk gone")

    lazy = LazyTensors({"a": torch.empty(2, device="meta")}, load)
    with pytest.raises(OSError, match="disk gone"):
        write_safetensors_streamed(lazy, tmp_path / "w.safetensors", {})
    assert not list(tmp_path.iterdir())


def test_another_architecture_in_a_hf_folder_is_one_line(tmp_path: Path) -> None:
    save_hf(tmp_path / "hf")
    config = (tmp_path / "hf" / "config.json").read_text().replace('"vjepa2"', '"vit"')
    (tmp_path / "hf" / "config.json").write_text(config)
    with pytest.raises(CheckpointError, match="model_type is 'vit', not 'vjepa2'") as info:
        import_encoder(tmp_path / "hf", tmp_path / "run")
    assert "\n" not in str(info.value) and not (tmp_path / "run").exists()
