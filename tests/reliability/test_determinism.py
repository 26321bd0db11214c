"""Same seed and config on CPU, same results: collected data, training losses, evaluation rows."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.conftest import TINY_MODEL
from tests.reliability.helpers import run_main

# The tiny preset's stage 2: colour-augmented cache copy, keypoint readout and pixel state head (short),
# AC predictor.
TINY_AC = ["ac.width=32", "ac.depth=1", "ac.num_heads=1", "readout.steps=20", "readout.pixel_steps=4",
           "train.augment_copies=1"]  # fmt: skip
STEPS = 20
TIMING_FIELDS = ("ms_per_action", "peak_memory_mb")


def content_hash(path: Path) -> str:
    """Hash of every dataset's values and every attribute, in name order (not the file's bytes)."""
    digest = hashlib.sha256()
    with h5py.File(path, "r") as handle:
        items: list[tuple[str, object]] = []
        handle.visititems(lambda name, obj: items.append((name, obj)))
        for name, obj in [("/", handle), *sorted(items, key=lambda item: item[0])]:
            digest.update(name.encode())
            for key in sorted(obj.attrs):
                digest.update(f"{key}={obj.attrs[key]!r}".encode())
            if isinstance(obj, h5py.Dataset):
                digest.update(f"{obj.dtype}{obj.shape}".encode())
                digest.update(np.ascontiguousarray(obj[()]).tobytes())
    return digest.hexdigest()


def losses(run: Path) -> list[float]:
    with open(run / "metrics.csv") as handle:
        return [float(row["loss"]) for row in csv.DictReader(handle) if row.get("loss")]


def run_ok(*args: object) -> None:
    assert run_main(*args) == 0, f"wm {' '.join(map(str, args))} failed"


@pytest.fixture(scope="module")
def stage1(tiny_dataset, tmp_path_factory) -> dict[str, Path]:
    """Two identical tiny pretrain runs, and a cache + predictor from the first (for train/eval)."""
    root = tmp_path_factory.mktemp("determinism")
    for name in ("a", "b"):
        run_ok(
            "pretrain", f"data={tiny_dataset}", f"run.root={root}", f"run.name={name}", f"max_steps={STEPS}",
            "batch_size=4", "log_every=1", "checkpoint_every=1000", *TINY_MODEL,
        )  # fmt: skip
    cache = root / "emb.h5"
    stage2 = [f"data={tiny_dataset}", f"encoder={root / 'pretrain' / 'a'}", f"cache={cache}", *TINY_AC]
    run_ok("cache", *stage2)
    return {"root": root, "cache": cache, "stage2": stage2}  # type: ignore[dict-item]


def test_collect_twice_gives_identical_data(tmp_path) -> None:
    hashes = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.h5"
        run_ok(
            "collect", "envs=[jepa_wm/Reach-v0,jepa_wm/Push-v0]", "episodes=3", "steps=6", "workers=1",
            "image_size=32", "seed=5", f"out={out}",
        )  # fmt: skip
        hashes.append(content_hash(out))
    assert hashes[0] == hashes[1]


def test_pretrain_twice_gives_identical_losses(stage1) -> None:
    runs = stage1["root"] / "pretrain"
    first, second = losses(runs / "a"), losses(runs / "b")
    assert len(first) == STEPS
    assert first == second
    assert len(set(first)) > 1  # it really trained


def test_train_twice_gives_identical_losses(stage1) -> None:
    root = stage1["root"]
    for name in ("a", "b"):
        run_ok(
            "train", *stage1["stage2"], f"run.root={root}", f"run.name={name}", f"max_steps={STEPS}",
            "batch_size=4", "log_every=1", "checkpoint_every=1000",
        )  # fmt: skip
    first, second = losses(root / "ac" / "a"), losses(root / "ac" / "b")
    assert len(first) == STEPS
    assert first == second


def test_eval_twice_gives_identical_results(stage1, tmp_path) -> None:
    predictor = stage1["root"] / "ac" / "a"
    if not (predictor / "predictor.safetensors").exists():  # run on its own: train one
        run_ok(
            "train",
            *stage1["stage2"],
            f"run.root={stage1['root']}",
            "run.name=a",
            "max_steps=2",
            "batch_size=4",
        )
    rows = []
    for name in ("a", "b"):
        run_ok(
            "eval", "tasks=[jepa_wm/Reach-v0]", "rows=[oracle,simulator,learned]", "episodes=2", "budget=2",
            "plan.samples=16", "plan.iterations=2", "plan.horizon=2", "sim_samples=8", "sim_iterations=1",
            "eval.latent_grid=2", f"world_model={predictor}", f"run.root={tmp_path}", f"eval.name={name}",
        )  # fmt: skip
        payload = json.loads((tmp_path / "eval" / name / "results.json").read_text())
        rows.append([{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in payload["results"]])
    assert [r["row"] for r in rows[0]] == ["oracle", "simulator", "learned"]
    assert rows[0] == rows[1]
