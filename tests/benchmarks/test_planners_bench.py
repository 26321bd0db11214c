"""`wm bench planners`: every planner x budget point on a real tiny AC run, the plot and the
soonest-to-equal-official answer, then every point reused."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
import torch
from omegaconf import OmegaConf

from benchmarks import planners
from benchmarks.planners import (
    NEUTRAL_KEYS,
    base_config,
    fingerprint,
    parse,
    run_points,
    stored_points,
    weights_digest,
)
from benchmarks.planners_report import END, START, Budget, markers, soonest, table, update_page
from tests.worldmodel.training.tiny_runs import make_tiny_run
from worldmodel.common.errors import UserError
from worldmodel.config.schema import Config, load_config, to_yaml
from worldmodel.evaluation.evaluate import wilson_interval
from worldmodel.models.checkpoints import save_safetensors

PLANNERS, BUDGETS, ROWS = ("cem", "random"), ("2x1", "4x2"), ("simulator", "learned")


@pytest.fixture(scope="module")
def tiny_root(tiny_dataset, tmp_path_factory):
    """A run root holding a real, barely trained AC run at <root>/ac/tiny (the tiny preset's run.name)."""
    root = tmp_path_factory.mktemp("planners_bench")
    make_tiny_run(root, tiny_dataset)
    return root


def test_every_point_plot_and_answer_then_reused(wm, tiny_root, tmp_path) -> None:
    results = tmp_path / "results"
    args = [
        "bench", "planners", "--episodes", "1", "--budgets", ",".join(BUDGETS), "--official", "4x2",
        "--planners", ",".join(PLANNERS), "--tasks", "jepa_wm/Reach-v0", "--results-dir", str(results),
        "--no-readme", f"run.root={tiny_root}", "eval.budget=2",
    ]  # fmt: skip
    first = wm(*args)
    assert first.returncode == 0, first.stderr
    result = json.loads((results / "planners.json").read_text())
    points = result["figures"]["points"]
    assert [(p["row"], p["planner"], p["budget"]) for p in points] == [
        (row, planner, budget) for row in ROWS for planner in PLANNERS for budget in BUDGETS
    ]
    for p in points:
        assert p["task"] == "jepa_wm/Reach-v0" and p["episodes"] == 1
        assert 0 <= p["ci95"][0] <= p["success_rate"] <= p["ci95"][1] <= 1
        assert p["mean_final_distance_cm"] > 0 and p["ms_per_action"] > 0
        assert p["planner_label"] == f"{p['planner']} {p['budget']} h3"  # the official horizon
    assert result["config"]["official"] == "cem 4x2 h3"
    assert result["config"]["world_model"] == str(tiny_root / "ac" / "tiny")
    for row in ROWS:
        answer = result["figures"]["soonest"][f"Reach-v0 {row}"]
        assert answer["official"]["planner"] == "cem" and answer["official"]["budget"] == "4x2"
        assert answer["success_rate"] >= answer["official"]["success_rate"]
        assert 0 < answer["fraction_of_official_time"] <= 1
        assert f"[planners] Reach-v0 {row}: official cem 4x2" in first.stdout
    assert (results / "planners.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tiny_root / "bench" / "planners_points.json").is_file()

    # A fresh clone: no points file, the same run retrained (same weights, new dates); the committed
    # JSON's points are reused.
    (tiny_root / "bench" / "planners_points.json").unlink()
    for weights in (tiny_root / "ac" / "tiny").glob("*.safetensors"):
        os.utime(weights, (1.0, 1.0))
    second = wm(*args)
    assert second.returncode == 0, second.stderr
    assert second.stdout.count(" ms per action (reused)") == len(points)
    assert "[eval]" not in second.stdout  # nothing was planned again
    again = json.loads((results / "planners.json").read_text())["figures"]
    assert again["points"] == points and again["soonest"] == result["figures"]["soonest"]

    # A narrower study keeps the other points of the same settings in the result.
    third = wm(*args, "--rows", "learned", "--budgets", "4x2")  # the last of an option wins
    assert third.returncode == 0, third.stderr
    assert third.stdout.count(" ms per action (reused)") == len(PLANNERS)
    assert json.loads((results / "planners.json").read_text())["figures"]["points"] == points


def test_the_official_point_is_always_measured_and_bad_options_are_one_line() -> None:
    args = parse(["--budgets", "64x2,8x1", "--planners", "mppi,gradient"])
    assert args.budgets == [Budget(8, 1), Budget(64, 2), Budget(256, 5)]
    assert args.planners == ["cem", "mppi", "gradient"]
    with pytest.raises(UserError, match="--budgets: expected samples x iterations like 256x5, got '64'"):
        parse(["--budgets", "64"])
    with pytest.raises(UserError, match="--planners: expected names from cem,mppi,gradient,random"):
        parse(["--planners", "cem,ilqr"])
    assert parse([]).name == "planners" and parse(["--name", "planners_sim2"]).name == "planners_sim2"
    for bad in ("../escape", "simulator", "planners_Sim"):
        with pytest.raises(
            UserError, match="--name: expected planners or planners_<label> like planners_sim"
        ):
            parse(["--name", bad])


def test_push_always_plans_through_sub_goals_and_every_row_plans_every_episode() -> None:
    """The small preset lists PickPlace's sub-goals and fewer diagnostic episodes: neither may leak in."""
    args = parse(["--rows", "simulator", "--encoder", "pixels", "--episodes", "7", "preset=small"])
    config = base_config(args)
    assert "jepa_wm/Push-v0" in config.eval.subgoals and "jepa_wm/PickPlace-v0" in config.eval.subgoals
    assert config.eval.episodes == 7 and config.eval.diagnostic_episodes == 0


def test_soonest_is_the_cheapest_point_at_least_as_successful_as_official(tmp_path) -> None:
    def point(planner: str, budget: str, success: float, ms: float) -> dict:
        return {
            "task": "jepa_wm/Push-v0", "row": "learned", "planner": planner, "budget": budget,
            "success_rate": success, "ci95": [0.0, 1.0], "mean_final_distance_cm": 5.0, "ms_per_action": ms,
        }  # fmt: skip

    points = [
        point("cem", "256x5", 0.5, 1000.0),
        point("cem", "64x2", 0.4, 100.0),  # cheaper, but less successful
        point("mppi", "64x2", 0.55, 200.0),
        point("mppi", "256x5", 0.7, 900.0),
        {"task": "jepa_wm/Push-v0", "row": "simulator", "planner": "gradient", "budget": "256x5",
         "skipped": "needs a differentiable world model"},
    ]  # fmt: skip
    assert soonest(points[1:], Budget(256, 5)) == {}  # no answer before the official point is measured
    answers = soonest(points, Budget(256, 5))
    assert list(answers) == ["Push-v0 learned"]
    answer = answers["Push-v0 learned"]
    assert (answer["planner"], answer["budget"], answer["fraction_of_official_time"]) == ("mppi", "64x2", 0.2)
    markdown = table(points, answers)
    assert "| Push-v0 | learned | cem 256x5 (50%, 1,000) | mppi 64x2 | 55% | 200 | 0.20 |" in markdown
    alone = [point("cem", "256x5", 0.5, 1000.0), point("cem", "64x2", 0.4, 100.0)]
    alone_table = table(alone, soonest(alone, Budget(256, 5)))
    assert "| cem 256x5 (no cheaper point does) | 50% | 1,000 | 1.00 |" in alone_table
    assert (
        "| Push-v0 | simulator | gradient | 256x5 | - (needs a differentiable world model) | - | - |"
        in markdown
    )
    page = tmp_path / "results.md"
    page.write_text("# results\n")
    update_page("first", page=page)
    update_page(markdown, page=page)
    update_page("another run's study", "planners_simulator", page=page)
    text = page.read_text()
    assert text.count(START) == 1 and text.count(END) == 1 and "first" not in text
    assert "## Planners: success against time per action (planners_simulator)" in text
    own_start, own_end = markers("planners_simulator")
    assert text.split(own_start)[1].split(own_end)[0].strip() == "another run's study"
    assert markdown in text.split(START)[1].split(END)[0]


def test_a_stored_point_is_reused_only_while_its_weights_hold_the_same_bytes(tmp_path) -> None:
    run = tmp_path / "ac"
    run.mkdir()
    (run / "predictor.safetensors").write_bytes(b"weights")
    config = load_config(["preset=tiny", f"eval.world_model={run}", f"eval.encoder={run}"])
    before = fingerprint(config)
    os.utime(run / "predictor.safetensors", (1.0, 1.0))
    assert fingerprint(config) == before
    (run / "predictor.safetensors").write_bytes(b"weightz")
    assert fingerprint(config) != before
    changed = fingerprint(config)
    (run / "member1").mkdir()  # an ensemble's members are weights of the point too
    (run / "member1" / "predictor.safetensors").write_bytes(b"member")
    assert fingerprint(config) != changed
    member = fingerprint(config)
    (run / "member1" / "predictor.safetensors").write_bytes(b"membex")
    assert fingerprint(config) != member


def test_a_points_file_that_is_not_one_is_one_line(tmp_path) -> None:
    bad = tmp_path / "planners_points.json"
    for text in ("{not json", '["a list"]', '{"k": {"task": "jepa_wm/Reach-v0"}}'):
        bad.write_text(text)
        with pytest.raises(UserError, match=f"{bad}: not a `wm bench planners` points file"):
            stored_points(bad, tmp_path / "absent.json")


def test_a_point_in_chunks_survives_a_kill_and_resumes_at_its_next_chunk(
    tiny_root, tmp_path, monkeypatch
) -> None:
    argv = [
        "--episodes", "3", "--chunk", "2", "--rows", "simulator", "--planners", "cem", "--budgets", "2x1",
        "--official", "2x1", "--tasks", "jepa_wm/Reach-v0", "--results-dir", str(tmp_path), "--no-readme",
        f"run.root={tiny_root}", "eval.budget=2",
    ]  # fmt: skip
    args = parse(argv)
    base = base_config(args)
    points_file = tmp_path / "points.json"
    played: list[tuple[int, int]] = []
    real_measure = planners.measure

    def measure(config):
        played.append((config.eval.first_episode, config.eval.episodes))
        if len(played) == 2:
            raise KeyboardInterrupt  # the session ends inside the point's second chunk
        return real_measure(config)

    def publish(points, unfinished):
        planners.publish(points, base, args, unfinished)

    monkeypatch.setattr(planners, "measure", measure)
    with pytest.raises(KeyboardInterrupt):
        run_points(base, args, points_file, publish)
    [partial] = json.loads(points_file.read_text()).values()
    assert list(partial["chunks"]) == ["episodes 0-1"] and "success_rate" not in partial
    published = json.loads((tmp_path / "planners.json").read_text())["figures"]
    assert published["unfinished"] == [partial] and published["points"] == []

    points_file.unlink()  # a fresh clone: only the committed results JSON is left
    [point] = run_points(base, args, points_file, publish)
    assert played == [(0, 2), (2, 1), (2, 1)]  # resumed at the unfinished chunk only
    assert "unfinished" not in json.loads((tmp_path / "planners.json").read_text())["figures"]
    chunks = list(point["chunks"].values())
    assert point["episodes"] == 3 and point["chunk"] == 2
    assert point["success_rate"] * 3 == pytest.approx(sum(c["success_rate"] * c["episodes"] for c in chunks))
    assert point["mean_final_distance_cm"] == pytest.approx(
        sum(c["mean_final_distance_cm"] * c["episodes"] for c in chunks) / 3
    )
    assert point["ci95"] == pytest.approx(list(wilson_interval(round(point["success_rate"] * 3), 3)))

    # Reused as it is, with or without --chunk (the same episodes; only the batches differed).
    assert (
        run_points(base, args, points_file, lambda points, unfinished: None) == [point] and len(played) == 3
    )
    whole = parse(argv[:2] + argv[4:])
    assert whole.chunk is None
    assert run_points(base_config(whole), whole, points_file, lambda points, unfinished: None) == [point]
    assert len(played) == 3


def test_config_keys_added_later_leave_stored_points_valid_at_their_neutral_value(tmp_path) -> None:
    # tiny with the frame terms it now has set back to their neutral values: every neutral key neutral
    neutral_terms = ["readout.object_weight=0", "readout.state_weight=0", "readout.state_dims=[]",
                     "readout.state_source=tokens", "readout.pixel_steps=2000"]  # fmt: skip
    config = load_config(
        ["preset=tiny", f"eval.world_model={tmp_path}", f"eval.encoder={tmp_path}", *neutral_terms]
    )
    names = tuple(f"{key}:" for _, key in NEUTRAL_KEYS)
    before_the_keys = "".join(
        line for line in to_yaml(config).splitlines(keepends=True) if not line.strip().startswith(names)
    )
    assert fingerprint(config) == hashlib.sha256(before_the_keys.encode()).hexdigest()
    config.eval.first_episode = 3
    assert fingerprint(config) != hashlib.sha256(before_the_keys.encode()).hexdigest()


# The dotted config keys stored points are fingerprinted with. A key added to the config must join
# `NEUTRAL_KEYS` with the value that behaves as before it existed, or every stored point (hours of
# simulator chunks) silently stops matching, as happened once. Change this digest only on purpose.
FINGERPRINTED_KEYS_DIGEST = "ebbddfef13c957f4"


def test_a_new_config_key_is_neutral_or_invalidates_the_stored_points_on_purpose() -> None:
    def leaves(tree: dict, prefix: str = ""):
        for key, value in tree.items():
            yield from leaves(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"]

    settings = OmegaConf.to_container(OmegaConf.structured(Config()))
    keys = sorted(set(leaves(settings)) - {f"{section}.{key}" for section, key in NEUTRAL_KEYS})
    digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]
    assert digest == FINGERPRINTED_KEYS_DIGEST, (
        "the config's keys changed: add a new key to benchmarks.planners.NEUTRAL_KEYS with its neutral "
        "value, or set FINGERPRINTED_KEYS_DIGEST to " + digest + " if stored points must be measured again"
    )


def test_equal_weights_saved_with_their_header_in_another_order_are_the_same_weights(tmp_path) -> None:
    """safetensors writes the metadata in another order on every save: a retrained run with equal
    tensors must still reuse its points."""

    def save(path, header: dict, data: bytes) -> None:
        raw = json.dumps(header).encode()
        path.write_bytes(len(raw).to_bytes(8, "little") + raw + data)

    tensor = {"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}
    one, other, changed = tmp_path / "a.safetensors", tmp_path / "b.safetensors", tmp_path / "c.safetensors"
    save(one, {"__metadata__": {"format": "x", "config": "y"}, **tensor}, b"\x00\x00\x80\x3f")
    save(other, {**tensor, "__metadata__": {"config": "y", "format": "x"}}, b"\x00\x00\x80\x3f")
    save(changed, {"__metadata__": {"format": "x", "config": "y"}, **tensor}, b"\x00\x00\x00\x40")
    assert one.read_bytes() != other.read_bytes()
    assert weights_digest(one) == weights_digest(other) != weights_digest(changed)


def test_a_simulator_point_outlives_a_retrained_predictor_but_not_a_new_encoder_or_readout(tmp_path) -> None:
    """The simulator row plans with true dynamics through the encoder and readout only: retraining
    the predictor (other weights, other `train.*`) keeps its points; the learned row's are void."""
    encoder, run = tmp_path / "pretrain", tmp_path / "ac"
    encoder.mkdir(), run.mkdir()
    save_safetensors({"w": torch.zeros(2)}, encoder / "encoder.safetensors")
    save_safetensors({"w": torch.zeros(2)}, run / "readout.safetensors")

    def train_predictor(value: float) -> None:
        metadata = {"encoder": str(encoder / "encoder.safetensors")}
        save_safetensors({"w": torch.full((2,), value)}, run / "predictor.safetensors", metadata)

    def prints(row: str, *overrides: str) -> str:
        config = load_config(["preset=tiny", f"eval.world_model={run}", f"eval.encoder={run}", *overrides])
        config.eval.rows = [row]
        return fingerprint(config)

    train_predictor(0.0)
    before = {row: prints(row) for row in ("simulator", "learned")}
    train_predictor(1.0)
    assert prints("simulator", "train.max_steps=9999") == before["simulator"]
    assert prints("learned") != before["learned"]
    assert prints("simulator", "readout.steps=7") != before["simulator"]  # the readout's own settings
    save_safetensors({"w": torch.ones(2)}, encoder / "encoder.safetensors")
    assert prints("simulator") != before["simulator"]
    train_predictor(0.0)
    save_safetensors({"w": torch.ones(2)}, run / "readout.safetensors")
    assert prints("simulator") != before["simulator"]
