"""A machine without ffmpeg (a lent GPU image) still gets its episode videos, as GIFs."""

from __future__ import annotations

import imageio
import numpy as np

from worldmodel.evaluation import plan_run


def frames(n: int = 3) -> list[np.ndarray]:
    return [np.full((32, 32, 3), 40 * i, dtype=np.uint8) for i in range(n)]


def test_without_ffmpeg_the_mp4_becomes_a_gif(tmp_path, monkeypatch, capsys) -> None:
    def no_ffmpeg(*args, **kwargs):
        raise ImportError("To use the imageio ffmpeg plugin you need to 'pip install imageio-ffmpeg'")

    monkeypatch.setattr(plan_run.imageio, "get_writer", no_ffmpeg)
    written = plan_run.write_video(frames(), frames(1)[0], None, tmp_path / "Reach-v0_learned.mp4")
    assert written == [tmp_path / "Reach-v0_learned.gif"]
    assert len(imageio.mimread(written[0])) == 3
    assert not (tmp_path / "Reach-v0_learned.mp4").exists() and list(tmp_path.iterdir()) == written
    assert "no MP4 writer here" in capsys.readouterr().out


def test_with_a_gif_asked_for_only_that_gif_is_written(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(
        plan_run.imageio, "get_writer", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no ffmpeg"))
    )
    written = plan_run.write_video(frames(), frames(1)[0], None, tmp_path / "a.mp4", gif=tmp_path / "a.gif")
    assert written == [tmp_path / "a.gif"] and list(tmp_path.iterdir()) == written
