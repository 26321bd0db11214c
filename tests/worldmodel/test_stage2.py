"""Stage 2 for real: cache latents, refuse stale caches, train the AC predictor, plan with it."""

from __future__ import annotations

import json

import pytest

from tests.conftest import TINY_MODEL

TINY_AC = ["ac.width=32", "ac.depth=1", "ac.num_heads=1", "ac.grid_h=2", "ac.grid_w=2"]


@pytest.fixture(scope="module")
def pretrained(tiny_dataset, tmp_path_factory):
    from tests.conftest import run_wm

    root = tmp_path_factory.mktemp("stage2")
    args = [
        "pretrain",
        f"data={tiny_dataset}",
        f"run.root={root}",
        "max_steps=1",
        "batch_size=4",
        *TINY_MODEL,
    ]
    result = run_wm(*args)
    assert result.returncode == 0, result.stderr
    return root


def common(tiny_dataset, root, cache):
    return [
        f"data={tiny_dataset}",
        f"encoder={root / 'pretrain' / 'tiny'}",
        f"cache={cache}",
        f"run.root={root}",
    ]


def test_cache_train_and_plan_with_the_learned_model(wm, tiny_dataset, pretrained, tmp_path) -> None:
    cache = tmp_path / "emb.h5"
    base = common(tiny_dataset, pretrained, cache)
    result = wm("cache", *base, *TINY_AC)
    assert result.returncode == 0, result.stderr and cache.exists()
    result = wm("train", *base, *TINY_AC, "max_steps=3", "batch_size=4", "log_every=1", "run.name=s2")
    assert result.returncode == 0, result.stderr
    run = pretrained / "ac" / "s2"
    assert (run / "predictor.safetensors").exists()
    header = (run / "metrics.csv").read_text().splitlines()[0]
    assert "copy_loss" in header and "tf_loss" in header
    result = wm(
        "eval", "rows=[learned]", f"world_model={run}", "tasks=[jepa_wm/Reach-v0]", "episodes=1", "budget=2",
        "plan.samples=8", "plan.iterations=1", f"run.root={tmp_path}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    payload = json.loads((tmp_path / "eval" / "eval" / "results.json").read_text())
    assert payload["results"][0]["row"] == "learned" and payload["results"][0]["ms_per_action"] > 0


def test_stale_cache_is_refused(wm, tiny_dataset, pretrained, tmp_path) -> None:
    cache = tmp_path / "emb.h5"
    base = common(tiny_dataset, pretrained, cache)
    assert wm("cache", *base, *TINY_AC).returncode == 0
    other_pool = [*TINY_AC[:-2], "ac.grid_h=1", "ac.grid_w=1"]
    result = wm("train", *base, *other_pool, "max_steps=1", "run.name=stale")
    assert result.returncode == 2
    assert "stale embedding cache: 'latent_pool'" in result.stderr and "Traceback" not in result.stderr


def test_missing_cache_and_missing_encoder_are_one_line(wm, tiny_dataset, pretrained, tmp_path) -> None:
    result = wm("train", *common(tiny_dataset, pretrained, tmp_path / "none.h5"), "run.name=x")
    assert result.returncode == 2 and "run `wm cache` first" in result.stderr
    result = wm("cache", f"data={tiny_dataset}", f"encoder={tmp_path / 'nope'}")
    assert result.returncode == 2 and "run `wm pretrain` first" in result.stderr
