"""The episode store: round trip, layout, lock, resume, and validation of broken files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data.checks import validate
from data.episodes import DatasetError, EpisodeReader, EpisodeWriter
from tests.data.helpers import make_episode, make_meta


def write_dataset(path, episodes, meta=None):
    meta = meta or make_meta()
    with EpisodeWriter(path, meta) as writer:
        for index, episode in enumerate(episodes):
            writer.write(index, episode)
        writer.finalize()
    return path


def test_round_trip_and_layout(tmp_path) -> None:
    episodes = [make_episode(steps, seed=steps) for steps in (3, 5, 4)]
    path = write_dataset(tmp_path / "d.h5", episodes)
    reader = EpisodeReader(path)
    assert len(reader) == 3
    for index, original in enumerate(episodes):
        loaded = reader.read_episode(index)
        np.testing.assert_array_equal(loaded.pixels, original.pixels)
        np.testing.assert_array_equal(loaded.states, original.states)
        np.testing.assert_array_equal(loaded.actions, original.actions)
        assert loaded.seed == original.seed and loaded.policy == "test"
    with h5py.File(path) as handle:
        assert handle.attrs["format"] == "jepa-wm.episodes" and handle.attrs["version"] == 1
        pixels = handle["data/ep_000001/obs/pixels"]
        assert pixels.chunks == (1, 16, 16, 3)
        assert pixels.compression == "lzf"
        assert handle["data/ep_000001"].attrs["num_steps"] == 5
    assert not (tmp_path / "d.h5.parts").exists()
    assert validate(path) == []


@settings(max_examples=8, deadline=None)
@given(
    steps=st.integers(1, 6),
    action_dim=st.integers(1, 9),
    state_dim=st.integers(1, 9),
    size=st.sampled_from([8, 12]),
)
def test_round_trip_any_dimensions(tmp_path_factory, steps, action_dim, state_dim, size) -> None:
    meta = make_meta(action_dim, state_dim, size)
    episode = make_episode(steps, meta=meta)
    path = write_dataset(tmp_path_factory.mktemp("h") / "d.h5", [episode], meta)
    loaded = EpisodeReader(path).read_episode(0)
    np.testing.assert_array_equal(loaded.actions, episode.actions)
    assert loaded.pixels.shape == (steps + 1, size, size, 3)


def test_second_writer_is_refused(tmp_path) -> None:
    path = tmp_path / "d.h5"
    with EpisodeWriter(path, make_meta()):
        with pytest.raises(DatasetError, match="another process is writing"):
            EpisodeWriter(path, make_meta(), resume=True)


def test_existing_output_needs_resume(tmp_path) -> None:
    path = write_dataset(tmp_path / "d.h5", [make_episode(2)])
    with pytest.raises(DatasetError, match="resume=true"):
        EpisodeWriter(path, make_meta())


def test_resume_appends_missing_indices_only(tmp_path) -> None:
    path = write_dataset(tmp_path / "d.h5", [make_episode(2, seed=i) for i in range(2)])
    with EpisodeWriter(path, make_meta(), resume=True) as writer:
        assert writer.existing_indices() == {0, 1}
        writer.write(2, make_episode(2, seed=2))
        writer.finalize()
    reader = EpisodeReader(path)
    assert [name for _, name in reader.entries] == ["ep_000000", "ep_000001", "ep_000002"]


def test_writer_rejects_inconsistent_episode(tmp_path) -> None:
    episode = make_episode(3)
    episode.actions = episode.actions[:2]
    with EpisodeWriter(tmp_path / "d.h5", make_meta()) as writer:
        with pytest.raises(DatasetError, match="key obs/pixels|key actions"):
            writer.write(0, episode)


def _corrupt(path, edit) -> None:
    with h5py.File(path, "a") as handle:
        edit(handle)


def _replace(handle, key, value) -> None:
    del handle[key]
    handle[key] = value


CORRUPTIONS = {
    "wrong dtype": (
        lambda h: _replace(h, "data/ep_000000/actions", np.zeros((4, 7), np.float64)),
        "key actions: expected float32 [4, 7], got float64",
    ),
    "wrong shape": (
        lambda h: _replace(h, "data/ep_000000/obs/state", np.zeros((5, 6), np.float32)),
        "key obs/state: expected float32 [5, 7]",
    ),
    "length mismatch": (
        lambda h: _replace(h, "data/ep_000000/actions", np.zeros((3, 7), np.float32)),
        "num_steps",
    ),
    "nan action": (
        lambda h: _replace(h, "data/ep_000000/actions", np.full((4, 7), np.nan, np.float32)),
        "key actions: contains NaN",
    ),
    "inf state": (
        lambda h: _replace(h, "data/ep_000000/obs/state", np.full((5, 7), np.inf, np.float32)),
        "key obs/state: contains NaN or infinite",
    ),
    "missing key": (lambda h: h.__delitem__("data/ep_000000/obs/pixels"), "key obs/pixels: missing"),
    "missing root attr": (
        lambda h: h.attrs.__delitem__("action_dim"),
        "root attribute 'action_dim' is missing",
    ),
    "wrong image size": (
        lambda h: _replace(h, "data/ep_000000/obs/pixels", np.zeros((5, 8, 8, 3), np.uint8)),
        "key obs/pixels: expected uint8 [5, 16, 16, 3]",
    ),
    "wrong format": (lambda h: h.attrs.__setitem__("format", "other"), "root attribute 'format'"),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_validate_reports_one_line_naming_file_episode_key(tmp_path, name) -> None:
    path = write_dataset(tmp_path / "d.h5", [make_episode(4), make_episode(4, seed=1)])
    edit, fragment = CORRUPTIONS[name]
    _corrupt(path, edit)
    problems = validate(path)
    assert len(problems) == 1, problems
    assert fragment in problems[0]
    assert str(path) in problems[0]
    assert "\n" not in problems[0]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [(b"", "file is empty"), (b"this is text, not hdf5", "not a readable HDF5 file")],
)
def test_non_hdf5_files_give_one_line(tmp_path, content, fragment) -> None:
    path = tmp_path / "bad.h5"
    path.write_bytes(content)
    problems = validate(path)
    assert len(problems) == 1 and problems[0].startswith(f"{path}: {fragment}")
    with pytest.raises(DatasetError, match=fragment):
        EpisodeReader(path)


def test_truncated_file_gives_one_line(tmp_path) -> None:
    path = write_dataset(tmp_path / "d.h5", [make_episode(6, seed=i) for i in range(3)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    problems = validate(path)
    assert len(problems) >= 1 and str(path) in problems[0]
    assert all("\n" not in line for line in problems)


def test_missing_dataset_is_one_line(tmp_path) -> None:
    assert validate(tmp_path / "nope.h5") == [f"{tmp_path / 'nope.h5'}: dataset does not exist"]


def test_directory_of_files_reads_as_one_dataset(tmp_path) -> None:
    write_dataset(tmp_path / "dir" / "a.h5", [make_episode(2)])
    write_dataset(tmp_path / "dir" / "b.h5", [make_episode(3), make_episode(4)])
    reader = EpisodeReader(tmp_path / "dir")
    assert len(reader) == 3
    assert sorted(reader.lengths) == [2, 3, 4]
