"""`wm bench ablation`: the four latent spaces through the real pipeline, one table, reused stages."""

from __future__ import annotations

import json

from omegaconf import OmegaConf

from benchmarks.ablation import END, START, table, update_page
from tests.conftest import TINY_PIPELINE

TINY = [s for s in TINY_PIPELINE if not s.startswith("eval.tasks=")]  # --tasks sets them


def test_ablation_runs_four_latent_spaces_then_reuses_them(wm, tmp_path) -> None:
    args = [
        "bench", "ablation", "--root", str(tmp_path / "runs"), "--results-dir", str(tmp_path / "results"),
        "--episodes", "1", "--tasks", "jepa_wm/Reach-v0", "--probe-episodes", "2", "--no-readme",
        "--mae-steps", "3",
        f"collect.out={tmp_path / 'play.h5'}", *TINY,
    ]  # fmt: skip
    first = wm(*args)
    assert first.returncode == 0, first.stderr
    for latent in ("ours", "mae", "random", "pixels"):
        for stage in ("probe", "cache", "train", "eval"):
            assert f"[{latent}: {stage}] finished" in first.stdout, (latent, stage)
    for name in ("ours (V-JEPA)", "MAE", "random-init ViT", "raw pixels"):
        assert f"| {name} | 1 |" in first.stdout, name  # the planner's latent: one keypoint token
    result = json.loads((tmp_path / "results" / "ablation.json").read_text())
    assert result["config"]["latents"] == ["ours", "mae", "random", "pixels"]
    for latent in ("ours", "mae", "random", "pixels"):
        assert -1 <= result["figures"][f"{latent} rank_corr_ee"] <= 1
        assert result["figures"][f"{latent} pooled probe_r2_ee"] <= 1
        for row in ("simulator", "learned"):
            assert 0 <= result["figures"][f"{latent} Reach-v0 {row}"] <= 1
    # --mae-steps: the MAE run trains its own step count, and its name says so.
    mae = OmegaConf.load(tmp_path / "runs" / "pretrain" / "tiny_mae3" / "config.yaml")
    assert mae.pretrain.method == "mae" and mae.pretrain.max_steps == 3
    probe = json.loads((tmp_path / "runs" / "ablation" / "ours" / "probe_2ep.json").read_text())
    assert [row["encoder"] for row in probe] == [
        str(tmp_path / "runs" / "ac" / "ablation_ours"),
        str(tmp_path / "runs" / "pretrain" / "tiny"),
    ]
    assert (tmp_path / "runs" / "ac" / "ablation_pixels" / "predictor.safetensors").exists()
    second = wm(*args)
    assert second.returncode == 0, second.stderr
    assert "started" not in second.stdout.replace("[ablation]", "")
    assert second.stdout.count("reused existing output") == 1 + 4 * 5  # collect + 5 stages per latent


def test_table_and_readme_block_are_rewritten_in_place(tmp_path) -> None:
    probe = {"rank_corr_ee": 0.5, "rank_corr_ee_near": 0.4, "rank_corr_cube": 0.25}
    row = {
        "tokens": 1,
        "probe": probe | {"probe_r2_ee": 0.9, "probe_r2_cube": 0.8, "cross_error_cm_ee": 12.34},
        "pooled_probe": probe | {"probe_r2_ee": 0.7, "probe_r2_cube": 0.6},
        "success": {
            "Reach-v0 learned": {"success_rate": 0.7, "ci95": [0.4, 0.89], "mean_final_distance_cm": 3.25}
        },
    }
    markdown = table({"ours": row, "pixels": row}, ["jepa_wm/Reach-v0"], ["simulator", "learned"])
    expected = "| ours (V-JEPA) | 1 | 0.500 | 0.400 | 0.250 | 0.900 / 0.800 | 12.3 cm | 0.700 / 0.600 | - |"
    assert f"{expected} 70% [40%, 89%] (3.2 cm) |" in markdown
    assert "| raw pixels |" in markdown
    assert markdown.splitlines()[0].endswith("| Reach-v0 simulator | Reach-v0 learned |")
    readme = tmp_path / "README.md"
    readme.write_text("# title\n")
    update_page("first", readme)
    update_page(markdown, readme)
    text = readme.read_text()
    assert text.count(START) == 1 and text.count(END) == 1
    assert "first" not in text and "| raw pixels |" in text and text.startswith("# title\n")
