"""SIGKILL a real writer at random moments: finished episodes survive, resume fills the gaps."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from data.checks import validate
from data.episodes import DatasetError, EpisodeReader, EpisodeWriter
from tests.conftest import REPO_ROOT
from tests.data.helpers import make_episode, make_meta

WRITER = textwrap.dedent(
    """
    import sys
    from data.episodes import EpisodeWriter
    from tests.data.helpers import make_episode, make_meta
    path, total = sys.argv[1], int(sys.argv[2])
    meta = make_meta(image_size=48)
    with EpisodeWriter(path, meta, resume=True) as writer:
        for index in range(total):
            if index in writer.existing_indices():
                continue
            writer.write(index, make_episode(40, seed=index, meta=meta))
            print(f"done {index}", flush=True)
        writer.finalize()
    print("finalized", flush=True)
    """
)


def _spawn(path, total: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(total)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_sigkill_at_random_moments_then_resume(tmp_path) -> None:
    path, total = tmp_path / "d.h5", 12
    rng = np.random.default_rng(0)
    reported: set[int] = set()
    for _ in range(4):
        writer = _spawn(path, total)
        time.sleep(float(rng.uniform(0.5, 1.2)))  # lands mid-write: each episode takes a while
        writer.send_signal(signal.SIGKILL)
        out, _ = writer.communicate()
        reported |= {int(line.split()[1]) for line in out.splitlines() if line.startswith("done")}
        # Whatever the moment, every episode reported finished is readable and intact.
        assert validate(path) == []
        reader = EpisodeReader(path)
        names = {name for _, name in reader.entries}
        assert {f"ep_{i:06d}" for i in reported} <= names
        for index in range(len(reader)):
            episode = reader.read_episode(index)
            expected = make_episode(40, seed=episode.seed, meta=make_meta(image_size=48))
            np.testing.assert_array_equal(episode.actions, expected.actions)
    writer = _spawn(path, total)
    out, _ = writer.communicate(timeout=120)
    assert "finalized" in out
    assert validate(path) == []
    reader = EpisodeReader(path)
    assert [name for _, name in reader.entries] == [f"ep_{i:06d}" for i in range(total)]
    assert sorted(a["seed"] for a in reader.attrs) == list(range(total))
    assert not (tmp_path / "d.h5.parts").exists()


def test_killed_merge_keeps_shards(tmp_path) -> None:
    """A temp merge file left by a kill is ignored and the shards still hold every episode."""
    path = tmp_path / "d.h5"
    with EpisodeWriter(path, make_meta()) as writer:
        for index in range(3):
            writer.write(index, make_episode(2, seed=index))
    (tmp_path / ".d.h5.merge.tmp").write_bytes(b"half a file")
    assert len(EpisodeReader(path)) == 3  # readable from the shards before finalize
    with EpisodeWriter(path, make_meta(), resume=True) as writer:
        assert writer.existing_indices() == {0, 1, 2}
        writer.finalize()
    assert len(EpisodeReader(path)) == 3


def test_resumed_shards_are_visible_before_finalize(tmp_path) -> None:
    """Merged file + newer shards (a resumed run killed before finalize) read as one dataset."""
    path = tmp_path / "d.h5"
    with EpisodeWriter(path, make_meta()) as writer:
        for index in range(2):
            writer.write(index, make_episode(2, seed=index))
        writer.finalize()
    with EpisodeWriter(path, make_meta(), resume=True) as writer:
        writer.write(2, make_episode(2, seed=2))  # killed here: no finalize
    reader = EpisodeReader(path)
    assert [name for _, name in reader.entries] == ["ep_000000", "ep_000001", "ep_000002"]


def test_kill_between_merge_and_cleanup_never_double_counts(tmp_path) -> None:
    path = tmp_path / "dir" / "d.h5"
    with EpisodeWriter(path, make_meta()) as writer:
        for index in range(2):
            writer.write(index, make_episode(2, seed=index))
        shards = tmp_path / "keep"
        import shutil

        shutil.copytree(writer.parts, shards)
        writer.finalize()
    shutil.copytree(shards, writer.parts)  # as if the kill came right after the rename
    for target in (path, tmp_path / "dir"):
        names = [name for _, name in EpisodeReader(target).entries]
        assert names == ["ep_000000", "ep_000001"], target
    with EpisodeWriter(path, make_meta(), resume=True) as writer:
        assert writer.existing_indices() == {0, 1}
        with pytest.raises(DatasetError, match="already exists"):
            writer.write(1, make_episode(2))


def test_resume_with_other_image_size_is_refused(tmp_path) -> None:
    path = tmp_path / "d.h5"
    with EpisodeWriter(path, make_meta()) as writer:
        writer.write(0, make_episode(2))
    with pytest.raises(DatasetError, match="cannot resume"):
        EpisodeWriter(path, make_meta(image_size=32), resume=True)
