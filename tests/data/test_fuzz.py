"""Randomly damaged files: the reader and validator answer with DatasetError lines, never crash."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data.checks import validate
from data.clips import ClipConfig, ClipDataset
from data.episodes import DatasetError, EpisodeReader, EpisodeWriter
from tests.data.helpers import make_episode, make_meta


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "d.h5"
    with EpisodeWriter(path, make_meta()) as writer:
        for index in range(3):
            writer.write(index, make_episode(6, seed=index))
        writer.finalize()
    return path


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    cut=st.one_of(st.none(), st.floats(0.0, 1.0)),
    flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), max_size=20),
)
def test_damaged_files_never_crash_the_reader(pristine, tmp_path, cut, flips) -> None:
    path = tmp_path / "damaged.h5"
    shutil.copy(pristine, path)
    data = bytearray(path.read_bytes())
    for position, value in flips:
        data[int(position * (len(data) - 1))] = value
    if cut is not None:
        data = data[: int(cut * len(data))]
    path.write_bytes(bytes(data))
    problems = validate(path)
    assert all(isinstance(p, str) and "\n" not in p and str(path) in p for p in problems)
    try:
        reader = EpisodeReader(path)
        for index in range(len(reader)):
            reader.read_episode(index)
    except DatasetError as err:
        assert "\n" not in str(err)


def test_image_size_other_than_config_is_one_line(pristine) -> None:
    with pytest.raises(DatasetError, match="'image_size' is 16, but the config expects 64"):
        ClipDataset(pristine, ClipConfig(clip_len=2), image_size=64)


def test_empty_episode_is_refused(tmp_path) -> None:
    episode = make_episode(1)
    episode.actions = np.zeros((0, 7), np.float32)
    episode.states, episode.pixels = episode.states[:1], episode.pixels[:1]
    with EpisodeWriter(tmp_path / "d.h5", make_meta()) as writer:
        with pytest.raises(DatasetError, match="episode has no steps"):
            writer.write(0, episode)
