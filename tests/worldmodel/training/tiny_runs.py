"""Real, barely trained stage-2 runs for tests: a random-init tiny encoder, `wm cache`, `wm train`."""

from __future__ import annotations

from pathlib import Path

import torch

from tests.conftest import TINY_AC
from worldmodel.config.schema import load_config
from worldmodel.models.checkpoints import encoder_metadata, save_encoder
from worldmodel.models.vit import VisionTransformer, ViTConfig
from worldmodel.training.ac_train import train
from worldmodel.training.embedding_cache import build_cache


def tiny_encoder(root: Path) -> Path:
    """A random-init tiny encoder exported as `wm pretrain` does (no stage-1 training needed)."""
    path = root / "pretrain" / "tiny" / "encoder.safetensors"
    if not path.exists():
        torch.manual_seed(0)
        encoder = VisionTransformer(
            ViTConfig(embed_dim=64, depth=1, num_heads=1, mlp_hidden=128, img_size=64)
        )
        save_encoder(encoder, path, encoder_metadata(encoder.cfg, encoder.state_dict()))
    return path.parent


def tiny_train_config(root: Path, data: Path, *extra: str, name: str = "tiny"):
    """The `train` config of a 3-step tiny run whose cache is `root/emb.h5`."""
    return load_config(
        [f"data={data}", f"encoder={tiny_encoder(root)}", f"cache={root / 'emb.h5'}", f"run.root={root}",
         f"run.name={name}", "max_steps=3", "batch_size=4", "log_every=1", *TINY_AC, *extra],
        section="train",
    )  # fmt: skip


def make_tiny_run(root: Path, data: Path, *extra: str, name: str = "tiny") -> Path:
    """`wm cache` + `wm train` in-process (3 steps): a real, barely trained AC run folder."""
    config = tiny_train_config(root, data, *extra, name=name)
    if config.train.from_cache and not (root / "emb.h5").exists():
        build_cache(config, progress=False)
    return train(config)
