"""Collection frames/s with 2 workers and dataset read frames/s, each beside its baseline.

Run: `python -m benchmarks.data_throughput` (part of `make bench`). Targets: collection >= 200
frames/s at 64x64 with 2 workers; reading clips must outpace training by a wide margin.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import write_result
from data.clips import ClipConfig, ClipDataset
from data.collect import collect
from data.episodes import EpisodeReader


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=40, help="episodes of the 2-worker collection")
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args(argv)
    episodes, steps = args.episodes, args.steps
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        envs = ["jepa_wm/Reach-v0", "jepa_wm/Push-v0"]
        one = collect(envs, episodes // 2, steps, "play", Path(tmp) / "one.h5", workers=1, progress=False)
        two = collect(envs, episodes, steps, "play", Path(tmp) / "two.h5", workers=2, progress=False)
        figures["collect_fps_1_worker"] = one.frames_per_second
        figures["collect_fps_2_workers"] = two.frames_per_second
        figures["collect_speedup_2_vs_1"] = two.frames_per_second / one.frames_per_second
        reader = EpisodeReader(two.path)
        start = time.perf_counter()
        frames = sum(len(reader.read_frames(i)) for i in range(len(reader)))
        figures["read_whole_episodes_fps"] = frames / (time.perf_counter() - start)
        clips = ClipDataset(two.path, ClipConfig(clip_len=8, stride=1))
        order = np.random.default_rng(0).permutation(len(clips))[:300]
        start = time.perf_counter()
        for item in order:
            clips[int(item)]
        figures["read_random_clips_fps"] = len(order) * 8 / (time.perf_counter() - start)
        figures["bytes_per_frame_on_disk"] = two.path.stat().st_size / two.frames
    for key, value in figures.items():
        print(f"{key:28s} {value:10.1f}")
    print(
        f"wrote {write_result('data_throughput', {'episodes': episodes, 'steps': steps, 'image_size': 64}, figures)}"
    )
    return figures


if __name__ == "__main__":
    main()
