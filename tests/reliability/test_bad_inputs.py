"""A table of bad inputs for every `wm` subcommand: each is one clear error line, never a traceback.

Every case runs the real `worldmodel.cli.main` in-process (the same error handling as the console
script, without paying a torch import per case) and checks: a non-zero exit code (2 for bad input,
1 for `wm data check` problems), exactly one error line, no traceback, a message naming the
offending file or key, and no partial output (temp files, shard folders, half-written files).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from data.episodes import EpisodeWriter
from tests.conftest import TINY_AC, TINY_MODEL
from tests.data.helpers import make_episode, make_meta
from tests.reliability.helpers import run_main


@dataclass
class World:
    """Good inputs made once per module; each case damages a copy of one."""

    root: Path
    data: Path  # a real collected dataset, 64x64, 6 episodes of 12 steps
    small: Path  # a synthetic 16x16 dataset, 3 episodes of 5 steps
    encoder_run: Path
    cache: Path
    predictor_run: Path

    @property
    def encoder(self) -> Path:
        return self.encoder_run / "encoder.safetensors"

    @property
    def predictor(self) -> Path:
        return self.predictor_run / "predictor.safetensors"

    def stage2(self, tmp: Path, cache: Path | None = None) -> list[str]:
        """Overrides for `wm cache` / `wm train` on the good inputs, writing under `tmp`."""
        return [
            f"data={self.data}",
            f"encoder={self.encoder_run}",
            f"cache={cache or self.cache}",
            f"run.root={tmp}",
            *TINY_AC,
        ]


@pytest.fixture(scope="module")
def world(tiny_dataset, tmp_path_factory) -> World:
    root = tmp_path_factory.mktemp("reliability")
    small = root / "small.h5"
    with EpisodeWriter(small, make_meta()) as writer:
        for index in range(3):
            writer.write(index, make_episode(5, seed=index))
        writer.finalize()
    code = run_main(
        "pretrain", f"data={tiny_dataset}", f"run.root={root}", "max_steps=1", "batch_size=4", *TINY_MODEL
    )
    assert code == 0
    w = World(root, tiny_dataset, small, root / "pretrain" / "tiny", root / "emb.h5", root / "ac" / "tiny")
    assert run_main("cache", *w.stage2(root)) == 0
    assert run_main("train", *w.stage2(root), "max_steps=1", "batch_size=4") == 0
    return w


# ------------------------------------------------------------------------------------- helpers


def copy_h5(source: Path, dest: Path, edit: Callable[[h5py.File], None]) -> Path:
    shutil.copy(source, dest)
    with h5py.File(dest, "a") as handle:
        edit(handle)
    return dest


def replace(handle: h5py.File, key: str, value: np.ndarray) -> None:
    del handle[key]
    handle[key] = value


def random_bytes(path: Path, size: int = 4096) -> Path:
    path.write_bytes(np.random.default_rng(0).bytes(size))
    return path


def blocked(tmp: Path, name: str) -> Path:
    """An output path whose parent folder cannot exist (a regular file is in the way)."""
    (tmp / "blocker").write_text("not a folder")
    return tmp / "blocker" / name


def small_h5(w: World, tmp: Path, edit: Callable[[h5py.File], None]) -> Path:
    return copy_h5(w.small, tmp / "bad.h5", edit)


def data_h5(w: World, tmp: Path, edit: Callable[[h5py.File], None]) -> Path:
    """A damaged copy of the collected 64x64 dataset (what pretrain/cache read)."""
    return copy_h5(w.data, tmp / "bad_data.h5", edit)


def robomimic(tmp: Path, edit: Callable[[h5py.File], None] | None = None) -> Path:
    from tests.data.test_importers import write_robomimic

    path = write_robomimic(tmp / "lift.hdf5", steps=4)
    if edit is not None:
        with h5py.File(path, "a") as handle:
            edit(handle)
    return path


def lerobot(tmp: Path, edit: Callable[[Path], None]) -> Path:
    from tests.data.test_importers import write_lerobot

    root = write_lerobot(tmp / "so100", episodes=1, frames=4)
    edit(root)
    return root


def encoder_variant(w: World, tmp: Path, edit: Callable[[dict, dict], None]) -> Path:
    """A copy of the good encoder with its tensors/metadata edited in place by `edit(state, meta)`."""
    from worldmodel.checkpoints import load_safetensors, save_safetensors

    state, meta = load_safetensors(w.encoder)
    edit(state, meta)
    return save_safetensors(state, tmp / "enc" / "encoder.safetensors", meta)


def predictor_variant(w: World, tmp: Path, edit: Callable[[dict, dict], None]) -> Path:
    from worldmodel.checkpoints import load_safetensors, save_safetensors

    state, meta = load_safetensors(w.predictor)
    edit(state, meta)
    return save_safetensors(state, tmp / "ac" / "predictor.safetensors", meta)


def other_encoder_cache(w: World, tmp: Path) -> Path:
    """A cache built with the good config by a different encoder (another weights hash)."""
    other = encoder_variant(w, tmp, lambda s, m: m.update(weights_hash="0123456789abcdef")).parent
    cache = tmp / "other_emb.h5"
    assert run_main("cache", *w.stage2(tmp, cache)[:1], f"encoder={other}", f"cache={cache}", *TINY_AC) == 0
    return cache


def tiny_eval(tmp: Path, *extra: str) -> list[str]:
    return [
        "eval",
        "tasks=[jepa_wm/Reach-v0]",
        "episodes=1",
        "budget=1",
        "plan.samples=4",
        "plan.iterations=1",
        "sim_samples=4",
        "sim_iterations=1",
        f"run.root={tmp}",
        *extra,
    ]


TINY_PLAN = ["eval.budget=1", "plan.samples=4", "plan.iterations=1", "sim_samples=4", "sim_iterations=1"]


@dataclass
class Spec:
    args: list[object]
    names: list[str]  # fragments the error line must contain (the offending file / key)
    absent: list[Path] = field(default_factory=list)  # outputs that must not exist afterwards
    code: int = 2
    unchanged: dict[Path, bytes] = field(default_factory=dict)  # inputs that must stay intact


Build = Callable[[World, Path], Spec]
CASES: dict[str, Build] = {}


def case(name: str) -> Callable[[Build], Build]:
    def register(build: Build) -> Build:
        assert name not in CASES, name
        CASES[name] = build
        return build

    return register


# ------------------------------------------------------------------------- config show / envs


@case("config-unknown-key")
def _(w, tmp):
    return Spec(["config", "show", "tiny", "collect.nope=1"], ["collect.nope"])


@case("config-wrong-type")
def _(w, tmp):
    return Spec(["config", "show", "collect.episodes=abc"], ["collect.episodes"])


@case("config-unknown-preset")
def _(w, tmp):
    return Spec(["config", "show", "nonesuch"], ["nonesuch"])


@case("config-missing-yaml-file")
def _(w, tmp):
    return Spec(["config", "show", tmp / "missing.yaml"], ["missing.yaml"])


@case("config-yaml-with-unknown-key")
def _(w, tmp):
    path = tmp / "mine.yaml"
    path.write_text("collect:\n  episodez: 3\n")
    return Spec(["config", "show", path], ["mine.yaml", "episodez"])


@case("config-yaml-not-a-mapping")
def _(w, tmp):
    path = tmp / "list.yaml"
    path.write_text("- 1\n- 2\n")
    return Spec(["config", "show", path], ["list.yaml"])


@case("config-yaml-syntax-error")
def _(w, tmp):
    path = tmp / "broken.yaml"
    path.write_text("collect: [unclosed\n")
    return Spec(["config", "show", path], ["broken.yaml"])


@case("config-override-without-equals")
def _(w, tmp):
    return Spec(["config", "show", "tiny", "novalue"], ["novalue"])


@case("config-ambiguous-bare-key")
def _(w, tmp):
    return Spec(["config", "show", "tiny", "episodes=5"], ["collect.episodes", "eval.episodes"])


@case("config-image-size-out-of-range")
def _(w, tmp):
    return Spec(["config", "show", "env.image_size=1000"], ["env.image_size"])


@case("config-horizon-zero")
def _(w, tmp):
    return Spec(["config", "show", "plan.horizon=0"], ["plan.horizon"])


@case("config-discount-above-one")
def _(w, tmp):
    return Spec(["config", "show", "plan.discount=1.5"], ["plan.discount"])


@case("config-execute-beyond-horizon")
def _(w, tmp):
    return Spec(["config", "show", "plan.horizon=2", "plan.execute=3"], ["plan.execute"])


@case("config-unknown-device")
def _(w, tmp):
    return Spec(["config", "show", "run.device=tpu"], ["run.device"])


@case("config-run-name-with-slash")
def _(w, tmp):
    return Spec(["config", "show", "run.name=a/b"], ["run.name"])


@case("config-list-for-scalar")
def _(w, tmp):
    return Spec(["config", "show", "run.seed=[1,2]"], ["run.seed"])


@case("envs-show-unknown-env")
def _(w, tmp):
    out = tmp / "scene.png"
    return Spec(["envs", "show", "jepa_wm/Nope-v0", "--out", out], ["jepa_wm/Nope-v0"], [out])


@case("envs-show-image-too-small")
def _(w, tmp):
    out = tmp / "scene.png"
    return Spec(["envs", "show", "jepa_wm/Reach-v0", "--out", out, "--size", "8"], ["8"], [out])


@case("envs-show-unknown-split")
def _(w, tmp):
    out = tmp / "scene.png"
    return Spec(["envs", "show", "jepa_wm/Reach-v0", "--out", out, "--split", "test"], ["test"], [out])


@case("envs-show-out-folder-blocked")
def _(w, tmp):
    out = blocked(tmp, "scene.png")
    return Spec(["envs", "show", "jepa_wm/Reach-v0", "--out", out, "--size", "16"], ["blocker"], [out])


# --------------------------------------------------------------------------------------- collect


def collect_args(tmp: Path, *extra: object) -> list[object]:
    return [
        "collect",
        "env=jepa_wm/Reach-v0",
        "episodes=1",
        "steps=2",
        "workers=1",
        f"out={tmp / 'c.h5'}",
        *extra,
    ]


@case("collect-zero-episodes")
def _(w, tmp):
    return Spec(collect_args(tmp, "episodes=0"), ["collect.episodes"], [tmp / "c.h5"])


@case("collect-negative-workers")
def _(w, tmp):
    return Spec(collect_args(tmp, "workers=-1"), ["collect.workers"], [tmp / "c.h5"])


@case("collect-oracle-policy")
def _(w, tmp):
    return Spec(collect_args(tmp, "policy=oracle"), ["collect.policy"], [tmp / "c.h5"])


@case("collect-unknown-policy")
def _(w, tmp):
    return Spec(collect_args(tmp, "policy=magic"), ["magic"], [tmp / "c.h5"])


@case("collect-unknown-env")
def _(w, tmp):
    return Spec(collect_args(tmp, "env=jepa_wm/Nope-v0"), ["jepa_wm/Nope-v0"], [tmp / "c.h5"])


@case("collect-missing-user-module")
def _(w, tmp):
    return Spec(collect_args(tmp, "import=no_such_module_xyz"), ["no_such_module_xyz"], [tmp / "c.h5"])


@case("collect-out-folder-blocked")
def _(w, tmp):
    out = blocked(tmp, "c.h5")
    return Spec(collect_args(tmp, f"out={out}"), ["blocker"], [out])


@case("collect-out-exists-without-resume")
def _(w, tmp):
    shutil.copy(w.small, tmp / "c.h5")
    return Spec(collect_args(tmp), ["c.h5", "resume=true"], [tmp / "c.h5.parts"])


@case("collect-resume-into-incompatible-file")
def _(w, tmp):
    shutil.copy(w.small, tmp / "c.h5")  # 16x16 test env data; this run would add 64x64 Reach
    return Spec(collect_args(tmp, "resume=true"), ["c.h5", "cannot resume"], [tmp / "c.h5.parts"])


# ------------------------------------------------------------------------------ data info/check


@case("info-missing-file")
def _(w, tmp):
    return Spec(["data", "info", tmp / "none.h5"], ["none.h5"])


@case("info-empty-file")
def _(w, tmp):
    (tmp / "empty.h5").write_bytes(b"")
    return Spec(["data", "info", tmp / "empty.h5"], ["empty.h5", "empty"])


@case("info-random-bytes")
def _(w, tmp):
    return Spec(["data", "info", random_bytes(tmp / "random.h5")], ["random.h5"])


@case("info-truncated-hdf5")
def _(w, tmp):
    path = tmp / "cut.h5"
    path.write_bytes(w.small.read_bytes()[: w.small.stat().st_size // 2])
    return Spec(["data", "info", path], ["cut.h5"])


@case("info-hdf5-without-format")
def _(w, tmp):
    with h5py.File(tmp / "plain.h5", "w") as handle:
        handle["x"] = np.zeros(3)
    return Spec(["data", "info", tmp / "plain.h5"], ["plain.h5", "format"])


@case("info-future-version")
def _(w, tmp):
    return Spec(
        ["data", "info", small_h5(w, tmp, lambda h: h.attrs.modify("version", 2))], ["bad.h5", "version"]
    )


@case("info-action-space-not-json")
def _(w, tmp):
    path = small_h5(w, tmp, lambda h: h.attrs.modify("action_space", "low=-1"))
    return Spec(["data", "info", path], ["bad.h5", "action_space"])


@case("info-episode-without-actions")
def _(w, tmp):
    path = small_h5(w, tmp, lambda h: h.__delitem__("data/ep_000001/actions"))
    return Spec(["data", "info", path], ["bad.h5", "ep_000001", "actions"])


@case("info-no-episodes")
def _(w, tmp):
    path = small_h5(w, tmp, lambda h: [h.__delitem__(f"data/{n}") for n in list(h["data"])])
    return Spec(["data", "info", path], ["bad.h5", "no episodes"])


@case("info-empty-folder")
def _(w, tmp):
    (tmp / "folder").mkdir()
    return Spec(["data", "info", tmp / "folder"], ["folder", ".h5"])


@case("info-preview-folder-blocked")
def _(w, tmp):
    out = blocked(tmp, "sheet.png")
    return Spec(["data", "info", w.small, "--preview", out], ["blocker"], [out])


def check_spec(path: Path, *names: str) -> Spec:
    return Spec(["data", "check", path], [path.name, *names], code=1)


@case("check-nan-actions")
def _(w, tmp):
    edit = lambda h: replace(h, "data/ep_000001/actions", np.full((5, 7), np.nan, np.float32))  # noqa: E731
    return check_spec(small_h5(w, tmp, edit), "ep_000001", "actions", "NaN")


@case("check-inf-states")
def _(w, tmp):
    edit = lambda h: replace(h, "data/ep_000002/obs/state", np.full((6, 7), np.inf, np.float32))  # noqa: E731
    return check_spec(small_h5(w, tmp, edit), "ep_000002", "obs/state", "infinite")


@case("check-float-pixels")
def _(w, tmp):
    edit = lambda h: replace(h, "data/ep_000000/obs/pixels", np.zeros((6, 16, 16, 3), np.float32))  # noqa: E731
    return check_spec(small_h5(w, tmp, edit), "ep_000000", "obs/pixels", "uint8")


@case("check-four-channel-pixels")
def _(w, tmp):
    edit = lambda h: replace(h, "data/ep_000000/obs/pixels", np.zeros((6, 16, 16, 4), np.uint8))  # noqa: E731
    return check_spec(small_h5(w, tmp, edit), "ep_000000", "obs/pixels", "16, 16, 3")


@case("check-wrong-image-size")
def _(w, tmp):
    edit = lambda h: replace(h, "data/ep_000000/obs/pixels", np.zeros((6, 32, 32, 3), np.uint8))  # noqa: E731
    return check_spec(small_h5(w, tmp, edit), "ep_000000", "obs/pixels", "32")


@case("check-states-one-row-short")
def _(w, tmp):
    edit = lambda h: replace(h, "data/ep_000001/obs/state", np.zeros((5, 7), np.float32))  # noqa: E731
    return check_spec(small_h5(w, tmp, edit), "ep_000001", "obs/state")


@case("check-float64-actions")
def _(w, tmp):
    edit = lambda h: replace(h, "data/ep_000001/actions", np.zeros((5, 7), np.float64))  # noqa: E731
    return check_spec(small_h5(w, tmp, edit), "ep_000001", "actions", "float32")


@case("check-num-steps-attr-lies")
def _(w, tmp):
    return check_spec(
        small_h5(w, tmp, lambda h: h["data/ep_000000"].attrs.modify("num_steps", 9)), "num_steps"
    )


@case("check-missing-pixels")
def _(w, tmp):
    return check_spec(small_h5(w, tmp, lambda h: h.__delitem__("data/ep_000002/obs/pixels")), "obs/pixels")


@case("check-missing-data-group")
def _(w, tmp):
    return check_spec(small_h5(w, tmp, lambda h: h.__delitem__("data")), "'data'")


@case("check-episode-without-steps")
def _(w, tmp):
    def edit(h):
        replace(h, "data/ep_000000/actions", np.zeros((0, 7), np.float32))
        replace(h, "data/ep_000000/obs/state", np.zeros((1, 7), np.float32))
        replace(h, "data/ep_000000/obs/pixels", np.zeros((1, 16, 16, 3), np.uint8))
        h["data/ep_000000"].attrs.modify("num_steps", 0)

    return check_spec(small_h5(w, tmp, edit), "ep_000000", "no steps")


@case("check-missing-root-attribute")
def _(w, tmp):
    return check_spec(small_h5(w, tmp, lambda h: h.attrs.__delitem__("state_dim")), "state_dim")


# ----------------------------------------------------------------------------------- data import


def import_spec(source: Path, out: Path, fmt: str, names: list[str], *extra: object) -> Spec:
    parts = Path(f"{out}.parts")
    return Spec(["data", "import", "--format", fmt, source, out, *extra], names, [out, parts])


@case("import-robomimic-random-bytes")
def _(w, tmp):
    source = random_bytes(tmp / "lift.hdf5")
    return import_spec(source, tmp / "out.h5", "robomimic", ["lift.hdf5"])


@case("import-robomimic-without-data-group")
def _(w, tmp):
    source = robomimic(tmp, lambda h: h.__delitem__("data"))
    return import_spec(source, tmp / "out.h5", "robomimic", ["lift.hdf5", "'data'"])


@case("import-robomimic-second-demo-missing-key")
def _(w, tmp):
    source = robomimic(tmp, lambda h: h.__delitem__("data/demo_1/obs/robot0_eef_pos"))
    return import_spec(source, tmp / "out.h5", "robomimic", ["lift.hdf5", "demo_1", "robot0_eef_pos"])


@case("import-robomimic-unknown-camera")
def _(w, tmp):
    source = robomimic(tmp)
    return import_spec(source, tmp / "out.h5", "robomimic", ["lift.hdf5", "wrist_image"], "--camera", "wrist")


@case("import-robomimic-nan-actions")
def _(w, tmp):
    source = robomimic(tmp, lambda h: replace(h, "data/demo_1/actions", np.full((4, 7), np.nan)))
    return import_spec(source, tmp / "out.h5", "robomimic", ["out.h5", "actions", "NaN"])


@case("import-robomimic-action-dim-changes")
def _(w, tmp):
    source = robomimic(tmp, lambda h: replace(h, "data/demo_1/actions", np.zeros((4, 6))))
    return import_spec(source, tmp / "out.h5", "robomimic", ["out.h5", "actions"])


@case("import-robomimic-grayscale-images")
def _(w, tmp):
    def edit(h):
        for group in ("obs", "next_obs"):
            for d in (0, 1):
                replace(h, f"data/demo_{d}/{group}/agentview_image", np.zeros((4, 84, 84, 1), np.uint8))

    source = robomimic(tmp, edit)
    return import_spec(source, tmp / "out.h5", "robomimic", ["obs/pixels", "3"])


@case("import-unknown-format")
def _(w, tmp):
    return import_spec(robomimic(tmp), tmp / "out.h5", "rlds", ["--format", "rlds"])


@case("import-image-size-too-small")
def _(w, tmp):
    return import_spec(robomimic(tmp), tmp / "out.h5", "robomimic", ["--image-size"], "--image-size", "8")


@case("import-out-already-exists")
def _(w, tmp):
    shutil.copy(w.small, tmp / "out.h5")
    spec = import_spec(robomimic(tmp), tmp / "out.h5", "robomimic", ["out.h5", "already exists"])
    spec.absent = [Path(f"{tmp / 'out.h5'}.parts")]
    return spec


@case("import-out-folder-blocked")
def _(w, tmp):
    return import_spec(robomimic(tmp), blocked(tmp, "out.h5"), "robomimic", ["blocker"])


@case("import-lerobot-without-info")
def _(w, tmp):
    source = lerobot(tmp, lambda root: (root / "meta" / "info.json").unlink())
    return import_spec(source, tmp / "out.h5", "lerobot", ["so100", "info.json"])


@case("import-lerobot-info-not-json")
def _(w, tmp):
    source = lerobot(tmp, lambda root: (root / "meta" / "info.json").write_text("{fps: 10"))
    return import_spec(source, tmp / "out.h5", "lerobot", ["info.json"])


@case("import-lerobot-missing-video")
def _(w, tmp):
    source = lerobot(tmp, lambda root: shutil.rmtree(root / "videos"))
    return import_spec(source, tmp / "out.h5", "lerobot", ["so100", "episode_000000"])


@case("import-lerobot-corrupt-video")
def _(w, tmp):
    def edit(root):
        for video in root.rglob("*.mp4"):
            random_bytes(video, 500)

    source = lerobot(tmp, edit)
    return import_spec(source, tmp / "out.h5", "lerobot", ["episode_000000.mp4"])


# ----------------------------------------------------------------------------- pretrain / probe


def pretrain_args(w: World, tmp: Path, *extra: object) -> list[object]:
    return [
        "pretrain",
        f"data={w.data}",
        f"run.root={tmp}",
        "max_steps=1",
        "batch_size=4",
        *TINY_MODEL,
        *extra,
    ]


def pretrain_spec(w: World, tmp: Path, names: list[str], *extra: object) -> Spec:
    run = tmp / "pretrain" / "tiny"
    return Spec(pretrain_args(w, tmp, *extra), names, [run / "checkpoints", run / "encoder.safetensors"])


@case("pretrain-missing-data")
def _(w, tmp):
    return pretrain_spec(w, tmp, ["none.h5"], f"data={tmp / 'none.h5'}")


@case("pretrain-random-bytes-data")
def _(w, tmp):
    return pretrain_spec(w, tmp, ["random.h5"], f"data={random_bytes(tmp / 'random.h5')}")


@case("pretrain-episodes-shorter-than-clip")
def _(w, tmp):
    return pretrain_spec(w, tmp, [w.data.name, "clip of 20 frames"], "clip_len=20")


@case("pretrain-image-size-mismatch")
def _(w, tmp):
    return pretrain_spec(w, tmp, [w.data.name, "image_size"], "env.image_size=32")


@case("pretrain-negative-batch-size")
def _(w, tmp):
    return pretrain_spec(w, tmp, ["pretrain.batch_size"], "batch_size=-4")


@case("pretrain-zero-lr")
def _(w, tmp):
    return pretrain_spec(w, tmp, ["pretrain.lr"], "lr=0")


@case("pretrain-lr-not-a-number")
def _(w, tmp):
    return pretrain_spec(w, tmp, ["pretrain.lr"], "lr=fast")


@case("pretrain-heads-do-not-divide-width")
def _(w, tmp):
    return pretrain_spec(w, tmp, ["num_heads"], "jepa.encoder.num_heads=5")


@case("pretrain-unknown-method")
def _(w, tmp):
    return pretrain_spec(w, tmp, ["pretrain.method"], "method=vae")


@case("pretrain-unknown-schedule")
def _(w, tmp):
    return pretrain_spec(w, tmp, ["pretrain.schedule"], "schedule=step")


@case("pretrain-run-root-blocked")
def _(w, tmp):
    root = blocked(tmp, "runs")
    return Spec(pretrain_args(w, tmp, f"run.root={root}"), ["blocker"], [root])


@case("pretrain-existing-run-without-resume")
def _(w, tmp):
    shutil.copytree(w.encoder_run, tmp / "pretrain" / "tiny")
    before = (tmp / "pretrain" / "tiny" / "encoder.safetensors").read_bytes()
    unchanged = {tmp / "pretrain" / "tiny" / "encoder.safetensors": before}
    return Spec(pretrain_args(w, tmp), ["pretrain/tiny", "resume=true"], unchanged=unchanged)


@case("probe-missing-encoder")
def _(w, tmp):
    return Spec(["probe", tmp / "nothing", "--episodes", "2", "--steps", "2"], ["nothing"])


@case("probe-grids-not-integers")
def _(w, tmp):
    return Spec(["probe", "pixels", "--grids", "1,two"], ["--grids", "1,two"])


@case("probe-random-bytes-encoder")
def _(w, tmp):
    path = random_bytes(tmp / "encoder.safetensors")
    return Spec(["probe", path, "--episodes", "2", "--steps", "2"], ["encoder.safetensors"])


@case("probe-predictor-given-as-encoder")
def _(w, tmp):
    return Spec(["probe", w.predictor, "--episodes", "2", "--steps", "2"], ["predictor.safetensors"])


@case("probe-unknown-env")
def _(w, tmp):
    return Spec(["probe", "pixels", "--env", "jepa_wm/Nope-v0", "--episodes", "2"], ["jepa_wm/Nope-v0"])


# ------------------------------------------------------------------------------------ cache/train


def cache_spec(w: World, tmp: Path, names: list[str], *extra: object) -> Spec:
    cache = tmp / "emb.h5"
    return Spec(["cache", *w.stage2(tmp, cache), *extra], names, [cache])


@case("cache-random-bytes-encoder")
def _(w, tmp):
    return cache_spec(w, tmp, ["encoder.safetensors"], f"encoder={random_bytes(tmp / 'encoder.safetensors')}")


@case("cache-pt-pickle-encoder")
def _(w, tmp):
    torch.save({"target_encoder": {"w": torch.zeros(2)}}, tmp / "vitl.pt")
    return cache_spec(w, tmp, ["vitl.pt"], f"encoder={tmp / 'vitl.pt'}")


@case("cache-predictor-given-as-encoder")
def _(w, tmp):
    return cache_spec(w, tmp, ["predictor.safetensors"], f"encoder={w.predictor}")


@case("cache-encoder-missing-tensor")
def _(w, tmp):
    path = encoder_variant(w, tmp, lambda s, m: s.pop("blocks.0.mlp.fc1.weight"))
    return cache_spec(w, tmp, ["encoder.safetensors", "blocks.0.mlp.fc1.weight"], f"encoder={path}")


@case("cache-encoder-wrong-size")
def _(w, tmp):
    def edit(state, meta):
        config = json.loads(meta["encoder_config"])
        config["embed_dim"] = 128
        meta["encoder_config"] = json.dumps(config)

    path = encoder_variant(w, tmp, edit)
    return cache_spec(w, tmp, ["encoder.safetensors", "expected"], f"encoder={path}")


@case("cache-encoder-config-not-json")
def _(w, tmp):
    path = encoder_variant(w, tmp, lambda s, m: m.update(encoder_config="{embed_dim: 64"))
    return cache_spec(w, tmp, ["encoder.safetensors", "encoder_config"], f"encoder={path}")


@case("cache-missing-data")
def _(w, tmp):
    return cache_spec(w, tmp, ["none.h5"], f"data={tmp / 'none.h5'}")


@case("cache-nan-states-in-data")
def _(w, tmp):
    def edit(h):
        name = sorted(h["data"])[1]
        states = h[f"data/{name}/obs/state"][()]
        states[3, 0] = np.nan
        replace(h, f"data/{name}/obs/state", states)

    path = data_h5(w, tmp, edit)
    return cache_spec(w, tmp, ["bad_data.h5", "obs/state"], f"data={path}")


@case("cache-empty-data-file")
def _(w, tmp):
    (tmp / "empty.h5").write_bytes(b"")
    return cache_spec(w, tmp, ["empty.h5", "empty"], f"data={tmp / 'empty.h5'}")


@case("cache-out-folder-blocked")
def _(w, tmp):
    cache = blocked(tmp, "emb.h5")
    return Spec(["cache", *w.stage2(tmp, cache)], ["blocker"], [cache])


def train_spec(w: World, tmp: Path, names: list[str], *extra: object, cache: Path | None = None) -> Spec:
    run = tmp / "ac" / "tiny"
    args = ["train", *w.stage2(tmp, cache), "max_steps=1", "batch_size=4", *extra]
    return Spec(args, names, [run / "checkpoints", run / "predictor.safetensors"])


@case("train-missing-cache")
def _(w, tmp):
    return train_spec(w, tmp, ["none.h5", "wm cache"], cache=tmp / "none.h5")


@case("train-cache-from-another-encoder")
def _(w, tmp):
    return train_spec(w, tmp, ["other_emb.h5", "encoder_hash"], cache=other_encoder_cache(w, tmp))


@case("train-cache-random-bytes")
def _(w, tmp):
    return train_spec(w, tmp, ["random.h5"], cache=random_bytes(tmp / "random.h5"))


@case("train-cache-episode-missing-latents")
def _(w, tmp):
    cache = copy_h5(w.cache, tmp / "emb.h5", lambda h: h.__delitem__("ep_000002/latents"))
    return train_spec(w, tmp, ["emb.h5", "ep_000002", "latents"], cache=cache)


@case("train-cache-latents-wrong-shape")
def _(w, tmp):
    def edit(h):
        replace(h, "ep_000001/latents", np.zeros((13, 4, 8), np.float16))

    cache = copy_h5(w.cache, tmp / "emb.h5", edit)
    return train_spec(w, tmp, ["emb.h5", "ep_000001", "latents"], cache=cache)


@case("train-cache-without-episodes")
def _(w, tmp):
    cache = copy_h5(w.cache, tmp / "emb.h5", lambda h: [h.__delitem__(n) for n in list(h)])
    return train_spec(w, tmp, ["emb.h5", "no episodes"], cache=cache)


@case("train-pooling-differs-from-cache")
def _(w, tmp):
    return train_spec(w, tmp, ["emb.h5", "latent_pool"], "ac.grid_h=1", "ac.grid_w=1")


@case("train-clip-longer-than-episodes")
def _(w, tmp):
    return train_spec(w, tmp, ["train.clip_len", "40"], "clip_len=40")


@case("train-batch-larger-than-data")
def _(w, tmp):
    return train_spec(w, tmp, ["train.batch_size", "5000"], "batch_size=5000")


@case("train-clip-len-one")
def _(w, tmp):
    return train_spec(w, tmp, ["train.clip_len"], "clip_len=1")


@case("train-auto-steps-zero")
def _(w, tmp):
    return train_spec(w, tmp, ["train.auto_steps"], "auto_steps=0")


@case("train-negative-lr")
def _(w, tmp):
    return train_spec(w, tmp, ["train.lr"], "lr=-0.001")


@case("train-encoder-gone")
def _(w, tmp):
    return train_spec(w, tmp, ["nothing", "wm pretrain"], f"encoder={tmp / 'nothing'}")


# ------------------------------------------------------------------------------------ eval / plan


def eval_spec(tmp: Path, names: list[str], *extra: str) -> Spec:
    return Spec(tiny_eval(tmp, *extra), names, [tmp / "eval"])


@case("eval-unknown-row")
def _(w, tmp):
    return eval_spec(tmp, ["eval.rows"], "rows=[magic]")


@case("eval-no-tasks")
def _(w, tmp):
    return eval_spec(tmp, ["eval.tasks"], "tasks=[]")


@case("eval-unknown-task")
def _(w, tmp):
    return eval_spec(tmp, ["jepa_wm/Nope-v0"], "tasks=[jepa_wm/Nope-v0]")


@case("eval-zero-budget")
def _(w, tmp):
    return eval_spec(tmp, ["eval.budget"], "budget=0")


@case("eval-negative-episodes")
def _(w, tmp):
    return eval_spec(tmp, ["eval.episodes"], "episodes=-1")


@case("eval-unknown-planner")
def _(w, tmp):
    return eval_spec(tmp, ["plan.planner"], "plan.planner=magic")


@case("eval-learned-row-without-world-model")
def _(w, tmp):
    return eval_spec(tmp, ["eval.world_model"], "rows=[learned]")


@case("eval-world-model-missing")
def _(w, tmp):
    return eval_spec(tmp, ["nothing"], "rows=[learned]", f"world_model={tmp / 'nothing'}")


@case("eval-encoder-given-as-predictor")
def _(w, tmp):
    return eval_spec(tmp, ["encoder.safetensors", "format"], "rows=[learned]", f"world_model={w.encoder}")


@case("eval-random-bytes-predictor")
def _(w, tmp):
    path = random_bytes(tmp / "predictor.safetensors")
    return eval_spec(tmp, ["predictor.safetensors"], "rows=[learned]", f"world_model={path}")


@case("eval-predictor-missing-tensor")
def _(w, tmp):
    path = predictor_variant(w, tmp, lambda s, m: s.pop(sorted(s)[0]))
    return eval_spec(tmp, ["predictor.safetensors"], "rows=[learned]", f"world_model={path}")


@case("eval-predictor-wrong-size")
def _(w, tmp):
    def edit(state, meta):
        config = json.loads(meta["ac_config"])
        config["width"] = 64
        meta["ac_config"] = json.dumps(config)

    path = predictor_variant(w, tmp, edit)
    return eval_spec(tmp, ["predictor.safetensors"], "rows=[learned]", f"world_model={path}")


@case("eval-predictor-config-not-json")
def _(w, tmp):
    path = predictor_variant(w, tmp, lambda s, m: m.update(ac_config="{width: 32"))
    return eval_spec(tmp, ["predictor.safetensors", "ac_config"], "rows=[learned]", f"world_model={path}")


@case("eval-predictor-encoder-changed")
def _(w, tmp):
    other = encoder_variant(w, tmp, lambda s, m: m.update(weights_hash="0123456789abcdef"))
    path = predictor_variant(w, tmp, lambda s, m: m.update(encoder=str(other)))
    return eval_spec(tmp, ["predictor.safetensors", "changed"], "rows=[learned]", f"world_model={path}")


@case("eval-simulator-encoder-missing")
def _(w, tmp):
    return eval_spec(tmp, ["nothing"], "rows=[simulator]", f"eval.encoder={tmp / 'nothing'}")


@case("eval-output-folder-blocked")
def _(w, tmp):
    root = blocked(tmp, "runs")
    return Spec(tiny_eval(tmp, "rows=[oracle]", f"run.root={root}"), ["blocker"], [root])


def plan_spec(tmp: Path, names: list[str], *extra: object) -> Spec:
    video = tmp / "plan.mp4"
    return Spec(["plan", *TINY_PLAN, f"run.root={tmp}", "--video", video, *extra], names, [video])


@case("plan-negative-fps")
def _(w, tmp):
    return plan_spec(tmp, ["--fps"], "--fps", "-1")


@case("plan-unknown-row")
def _(w, tmp):
    return plan_spec(tmp, ["--row", "magic"], "--row", "magic")


@case("plan-goal-image-missing")
def _(w, tmp):
    return plan_spec(tmp, ["goal.png"], "--row", "simulator", "--goal-image", tmp / "goal.png")


@case("plan-goal-image-random-bytes")
def _(w, tmp):
    goal = random_bytes(tmp / "goal.png")
    return plan_spec(tmp, ["goal.png"], "--row", "simulator", "--goal-image", goal)


@case("plan-goal-image-with-subgoals")
def _(w, tmp):
    goal = tmp / "goal.png"
    Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8)).save(goal)
    return plan_spec(
        tmp, ["--goal-image", "subgoals"], "--row", "simulator", "--env", "jepa_wm/Push-v0",
        "eval.subgoals=[jepa_wm/Push-v0]", "--goal-image", goal,
    )  # fmt: skip


@case("plan-oracle-with-goal-image")
def _(w, tmp):
    goal = random_bytes(tmp / "goal.png")
    return plan_spec(tmp, ["--goal-image", "oracle"], "--row", "oracle", "--goal-image", goal)


@case("plan-video-folder-blocked")
def _(w, tmp):
    video = blocked(tmp, "plan.mp4")
    return Spec(["plan", *TINY_PLAN, "--row", "oracle", "--video", video], ["blocker"], [video])


@case("plan-horizon-zero")
def _(w, tmp):
    return plan_spec(tmp, ["plan.horizon"], "plan.horizon=0")


@case("plan-unknown-env")
def _(w, tmp):
    return plan_spec(tmp, ["jepa_wm/Nope-v0"], "--row", "oracle", "--env", "jepa_wm/Nope-v0")


@case("plan-learned-random-bytes-predictor")
def _(w, tmp):
    path = random_bytes(tmp / "predictor.safetensors")
    return plan_spec(tmp, ["predictor.safetensors"], "--row", "learned", f"eval.world_model={path}")


# ---------------------------------------------------------------------------------- baseline


@case("baseline-unknown-kind")
def _(w, tmp):
    return Spec(["baseline", "jpeg", "--out", tmp / "enc"], ["jpeg"], [tmp / "enc"])


@case("baseline-output-folder-blocked")
def _(w, tmp):
    (tmp / "blocker").write_text("a file")
    out = tmp / "blocker" / "enc"
    return Spec(["baseline", "pixels", "--out", out], ["blocker"], [out])


# ------------------------------------------------------------------------------------- bench


@case("bench-unknown-benchmark")
def _(w, tmp):
    return Spec(["bench", "nonesuch"], ["nonesuch"])


@case("bench-ablation-unknown-latent")
def _(w, tmp):
    results = tmp / "results"
    return Spec(
        ["bench", "ablation", "--latents", "ours,jpeg", "--results-dir", results],
        ["--latents", "jpeg"],
        [results],
    )


@case("bench-ablation-zero-episodes")
def _(w, tmp):
    return Spec(
        ["bench", "ablation", "--episodes", "0", "--root", tmp / "runs"], ["--episodes"], [tmp / "runs"]
    )


@case("bench-ablation-unknown-row")
def _(w, tmp):
    return Spec(
        ["bench", "ablation", "--rows", "learned,oracle", "--root", tmp / "runs"],
        ["--rows", "oracle"],
        [tmp / "runs"],
    )


@case("bench-ablation-unknown-option")
def _(w, tmp):
    return Spec(["bench", "ablation", "--episode", "3"], ["--episode"])


@case("bench-ablation-unknown-config-key")
def _(w, tmp):
    return Spec(
        ["bench", "ablation", "--root", tmp / "runs", "plan.samplez=3"], ["plan.samplez"], [tmp / "runs"]
    )


# ------------------------------------------------------------------------------------------ test

LEFTOVERS = ("*.tmp", "*.tmp-*", ".*.tmp*", "*.parts")


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_clear_line(name: str, world: World, tmp_path: Path, capsys) -> None:
    spec = CASES[name](world, tmp_path)
    before = {p for pattern in LEFTOVERS for p in world.root.rglob(pattern)}
    capsys.readouterr()
    code = run_main(*spec.args)
    out, err = capsys.readouterr()
    text = out + err
    assert code == spec.code, f"exit {code}, expected {spec.code}; output:\n{text}"
    assert "Traceback" not in text and "internal error" not in text, text
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got:\n{err}"
    assert "error" not in out.lower(), out
    line = lines[0]
    for fragment in spec.names:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    for path in spec.absent:
        assert not path.exists(), f"partial output left behind: {path}"
    for path, content in spec.unchanged.items():
        assert path.read_bytes() == content, f"{path} was modified"
    leftovers = [p for pattern in LEFTOVERS for p in tmp_path.rglob(pattern)]
    assert not leftovers, f"temp files left behind: {leftovers}"
    after = {p for pattern in LEFTOVERS for p in world.root.rglob(pattern)}
    assert after == before, f"temp files left in the shared inputs: {after - before}"


def test_the_corpus_is_large_and_covers_every_command() -> None:
    assert len(CASES) >= 50
    prefixes = {name.split("-")[0] for name in CASES}
    assert {"config", "envs", "collect", "info", "check", "import", "pretrain", "probe"} <= prefixes
    assert {"cache", "train", "eval", "plan", "bench"} <= prefixes
