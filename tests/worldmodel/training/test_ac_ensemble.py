"""`train.ensemble`: K predictors trained on one readout, loaded as one world model, planned with
the members' disagreement (`plan.disagreement_weight`), resumed member by member."""

from __future__ import annotations

import numpy as np
import yaml

from tests.worldmodel.training.test_ac_object_term import KEYPOINTS
from tests.worldmodel.training.tiny_runs import make_tiny_run
from worldmodel.cli.plan import use_world_model
from worldmodel.config.schema import load_config
from worldmodel.evaluation.evaluate import evaluate
from worldmodel.models.checkpoints import load_safetensors
from worldmodel.models.world_model import WorldModel

OBJECT = [*KEYPOINTS, "readout.object_weight=16"]


def weights(path) -> dict:
    return load_safetensors(path)[0]


def test_an_ensemble_run_trains_its_members_beside_member_zero(tiny_dataset, tmp_path) -> None:
    run = make_tiny_run(tmp_path, tiny_dataset, *OBJECT, "train.ensemble=3", name="ens")
    member = run / "member2"
    assert (member / "predictor.safetensors").is_file() and (member / "checkpoints" / "last.ckpt").is_file()
    assert not (member / "readout.safetensors").exists()  # one readout, the run's
    assert yaml.safe_load((member / "config.yaml").read_text())["run"]["seed"] == 2
    wm = WorldModel.from_run(run)
    assert wm.ensemble_size == 3 and wm.object_term is not None
    first, second = weights(run / "predictor.safetensors"), weights(run / "member1" / "predictor.safetensors")
    assert any((first[k] - second[k]).abs().max() > 0 for k in first)  # another seed, other weights
    # member 0 is the run a plain `wm train` makes: an ensemble adds members, it changes nothing
    single = weights(make_tiny_run(tmp_path, tiny_dataset, *OBJECT, name="single") / "predictor.safetensors")
    assert all((first[k] == single[k]).all() for k in first)
    config = load_config(
        [f"world_model={run}", "rows=[learned]", "tasks=[jepa_wm/Push-v0]", "episodes=1", "budget=2",
         "plan.samples=8", "plan.iterations=1", "plan.disagreement_weight=2"],
        section="eval",
    )  # fmt: skip
    [learned] = evaluate(config, progress=False)
    assert len(learned.energies[0]) == 2 and np.isfinite(learned.energies[0]).all()
    line = use_world_model(config, ["learned"], "eval")  # what `wm eval` prints first
    assert line.endswith("; an ensemble of 3 predictors, plan.disagreement_weight=2)")


def test_resume_keeps_finished_members_and_trains_new_ones(tiny_dataset, tmp_path) -> None:
    run = make_tiny_run(tmp_path, tiny_dataset, "train.ensemble=2", name="ens")
    before = weights(run / "member1" / "predictor.safetensors")
    history = (run / "metrics.csv").read_text()
    make_tiny_run(tmp_path, tiny_dataset, "train.ensemble=3", "train.resume=true", name="ens")
    after = weights(run / "member1" / "predictor.safetensors")
    assert all((before[k] == after[k]).all() for k in before)
    assert (run / "metrics.csv").read_text().startswith(history)  # member 0's log survives its resume
    assert WorldModel.from_run(run).ensemble_size == 3
