"""`wm bench ablation`: the four latent spaces through the real pipeline, one table, reused stages."""

from __future__ import annotations

import json

from omegaconf import OmegaConf

from benchmarks.ablation import END, START, table, update_readme
from tests.conftest import TINY_MODEL

TINY = [
    "collect.envs=[jepa_wm/Reach-v0]",
    "collect.episodes=3",
    "collect.steps=8",
    "collect.workers=1",
    "pretrain.max_steps=2",
    "pretrain.batch_size=4",
    "eval.budget=2",
    "eval.sim_samples=4",
    "eval.sim_iterations=1",
    "plan.samples=8",
    "plan.iterations=1",
    "train.max_steps=2",
    "train.batch_size=4",
    "readout.steps=20",
    "ac.width=32",
    "ac.depth=1",
    "ac.num_heads=1",
    *TINY_MODEL,
]


def test_ablation_runs_four_latent_spaces_then_reuses_them(wm, tmp_path) -> None:
    args = [
        "bench", "ablation", "--root", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results"),
        "--episodes", "1", "--tasks", "jepa_wm/Reach-v0", "--probe-episodes", "2", "--no-readme",
        f"collect.out={tmp_path / 'play.h5'}", *TINY,
    ]  # fmt: skip
    first = wm(*args)
    assert first.returncode == 0, first.stderr
    for latent in ("ours", "mae", "random", "pixels"):
        for stage in ("probe", "cache", "train", "eval"):
            assert f"[{latent}: {stage}] finished" in first.stdout, (latent, stage)
    for name in ("ours (V-JEPA)", "MAE", "random-init ViT", "raw pixels"):
        assert f"| {name} | 4 |" in first.stdout, name
    result = json.loads((tmp_path / "results" / "ablation.json").read_text())
    assert result["config"]["latents"] == ["ours", "mae", "random", "pixels"]
    for latent in ("ours", "mae", "random", "pixels"):
        assert -1 <= result["figures"][f"{latent} rank_corr_ee"] <= 1
        for row in ("simulator", "learned"):
            assert 0 <= result["figures"][f"{latent} Reach-v0 {row}"] <= 1
    mae = OmegaConf.load(tmp_path / "runs" / "pretrain" / "tiny_mae" / "config.yaml")
    assert mae.pretrain.method == "mae"
    assert (tmp_path / "runs" / "ac" / "ablation_pixels" / "predictor.safetensors").exists()
    second = wm(*args)
    assert second.returncode == 0, second.stderr
    assert "started" not in second.stdout.replace("[ablation]", "")
    assert second.stdout.count("reused existing output") == 1 + 4 * 5  # collect + 5 stages per latent


def test_table_and_readme_block_are_rewritten_in_place(tmp_path) -> None:
    row = {
        "tokens": 4,
        "probe": {"rank_corr_ee": 0.5, "rank_corr_cube": 0.25, "probe_r2_ee": 0.9, "probe_r2_cube": 0.8},
        "success": {"Reach-v0 simulator": {"success_rate": 0.7, "mean_final_distance_cm": 3.25}},
    }
    markdown = table({"ours": row, "pixels": row}, ["jepa_wm/Reach-v0"])
    assert "| ours (V-JEPA) | 4 | 0.500 | 0.250 | 0.900 | 0.800 | 70% (3.2 cm) | - |" in markdown
    assert "| raw pixels |" in markdown
    readme = tmp_path / "README.md"
    readme.write_text("# title\n")
    update_readme("first", readme)
    update_readme(markdown, readme)
    text = readme.read_text()
    assert text.count(START) == 1 and text.count(END) == 1
    assert "first" not in text and "| raw pixels |" in text and text.startswith("# title\n")
