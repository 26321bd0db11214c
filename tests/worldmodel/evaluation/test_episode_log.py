"""`eval.save_episodes`: the episodes a row plays, written as an episode store a predictor can be
trained on; the executed actions replay to the same states, and an existing file is refused first."""

from __future__ import annotations

import numpy as np
import pytest

from data.episodes import EpisodeReader
from envs.registration import make_env
from tests.conftest import run_wm
from tests.worldmodel.training.tiny_runs import make_tiny_run
from worldmodel.common.errors import UserError
from worldmodel.config.schema import load_config
from worldmodel.evaluation.evaluate import evaluate

PUSH = "jepa_wm/Push-v0"


def eval_config(folder, *extra: str):
    return load_config(
        [f"tasks=[{PUSH}]", "rows=[random]", "episodes=2", "budget=3", "split=train",
         f"eval.save_episodes={folder}", *extra],
        section="eval",
    )  # fmt: skip


def test_played_episodes_are_saved_and_replay_to_the_same_states(tmp_path) -> None:
    folder = tmp_path / "mpc"
    [result] = evaluate(eval_config(folder), progress=False)
    reader = EpisodeReader(folder / "random_Push-v0.h5")
    assert len(reader) == 2 and reader.meta is not None and reader.meta.env_id == PUSH
    for index in range(2):
        episode = reader.read_episode(index)
        assert episode.pixels.shape == (4, 64, 64, 3) and episode.actions.shape == (3, 7)
        assert (episode.policy, episode.split) == ("mpc:random", "train")
        env = make_env(PUSH, split="train", image_size=64)
        obs, _ = env.reset(seed=episode.seed)
        np.testing.assert_array_equal(obs["pixels"], episode.pixels[0])
        for step, action in enumerate(episode.actions):
            obs, _, _, _, info = env.step(action)
            np.testing.assert_allclose(obs["state"], episode.states[step + 1], atol=1e-6)
        np.testing.assert_array_equal(obs["pixels"], episode.pixels[-1])
        assert episode.success == info["is_success"]
        env.close()
    assert [reader.read_episode(i).success for i in range(2)].count(True) == round(2 * result.success_rate)
    with pytest.raises(UserError, match="eval.save_episodes': .*random_Push-v0.h5 exists already"):
        evaluate(eval_config(folder, "episodes=1"), progress=False)


def test_a_predictor_trains_on_play_data_and_saved_episodes_together(tiny_dataset, tmp_path) -> None:
    data = tmp_path / "mixed"
    evaluate(eval_config(data), progress=False)
    (data / "play.h5").symlink_to(tiny_dataset)
    reader = EpisodeReader(data)
    assert len(reader) == 2 + len(EpisodeReader(tiny_dataset))
    run = make_tiny_run(tmp_path, data)
    assert (run / "predictor.safetensors").is_file()


def test_wm_eval_names_the_files_it_wrote(tmp_path) -> None:
    folder = tmp_path / "mpc"
    result = run_wm(
        "eval", f"tasks=[{PUSH}]", "rows=[random]", "episodes=1", "budget=2", f"eval.save_episodes={folder}",
        f"run.root={tmp_path}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"episodes: {folder / 'random_Push-v0.h5'} (`wm data info` shows them)" in result.stdout
    again = run_wm(
        "eval",
        f"tasks=[{PUSH}]",
        "rows=[random]",
        f"eval.save_episodes={folder}",
        "eval.name=b",
        f"run.root={tmp_path}",
    )
    assert again.returncode == 2 and "exists already" in again.stderr and "Traceback" not in again.stderr
