"""Bad inputs for every `wm` subcommand, as one table per command: each is one clear error line.

Every case runs the real `worldmodel.cli.main.main` in-process and checks the same contract: the
exit code (2 for bad input, 1 for problems `wm data check` finds), exactly one error line naming
the offending file or key, no traceback, and nothing left behind (no half-written file, temp file,
shard folder or run folder). Argument words may name the per-case folder and the good inputs as
`{tmp}`, `{data}`, `{small}`, `{encoder_run}`, `{encoder}`, `{cache}`, `{predictor_run}`, `{predictor}`.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from data.episodes import EpisodeWriter
from tests.conftest import TINY_AC, TINY_MODEL
from tests.data.helpers import make_episode, make_meta
from tests.data.test_importers import write_lerobot, write_robomimic
from tests.reliability.helpers import run_main
from worldmodel.models.checkpoints import load_safetensors, save_safetensors


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

    def fill(self, template: str, tmp: Path) -> str:
        """A table word with its `{name}` placeholders replaced by this case's paths."""
        return template.format(
            tmp=tmp,
            data=self.data,
            small=self.small,
            encoder_run=self.encoder_run,
            encoder=self.encoder,
            cache=self.cache,
            predictor_run=self.predictor_run,
            predictor=self.predictor,
        )


def stage2(cache: str = "{cache}") -> list[str]:
    """Overrides for `wm cache` / `wm train` on the good inputs, writing under the case folder."""
    return ["data={data}", "encoder={encoder_run}", f"cache={cache}", "run.root={tmp}", *TINY_AC]


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
    assert run_main("cache", *(w.fill(word, root) for word in stage2())) == 0
    assert run_main("train", *(w.fill(word, root) for word in stage2()), "max_steps=1", "batch_size=4") == 0
    return w


# ------------------------------------------------------------------------------------ the tables

Setup = Callable[[World, Path], None]


@dataclass(frozen=True)
class Case:
    id: str
    argv: Sequence[str]  # words after the command's usual argv (or after `base`)
    expect: Sequence[str]  # fragments the error line must contain (the offending file / key)
    setup: Setup | None = None  # makes the damaged inputs under {tmp} before the run
    absent: Sequence[str] | None = None  # outputs that must not exist afterwards; None: the command's
    base: Sequence[str] | None = None  # replaces the command's usual argv
    unchanged: Sequence[str] = ()  # inputs whose bytes must stay the same


@dataclass(frozen=True)
class Command:
    name: str
    base: Sequence[str]
    cases: Sequence[Case]
    absent: Sequence[str] = ()  # what a run would write; must not exist after any case
    code: int = 2


# ------------------------------------------------------------------------------------ setups


def all_of(*steps: Setup) -> Setup:
    def setup(w: World, tmp: Path) -> None:
        for step in steps:
            step(w, tmp)

    return setup


def replace(handle: h5py.File, key: str, value: np.ndarray) -> None:
    del handle[key]
    handle[key] = value


def edit_copy(source: Path, dest: Path, edit: Callable[[h5py.File], None]) -> None:
    shutil.copy(source, dest)
    with h5py.File(dest, "a") as handle:
        edit(handle)


def damaged_small(edit: Callable[[h5py.File], None]) -> Setup:
    """{tmp}/bad.h5: an edited copy of the synthetic 16x16 dataset."""
    return lambda w, tmp: edit_copy(w.small, tmp / "bad.h5", edit)


def damaged_data(edit: Callable[[h5py.File], None]) -> Setup:
    """{tmp}/bad_data.h5: an edited copy of the collected 64x64 dataset (what pretrain/cache read)."""
    return lambda w, tmp: edit_copy(w.data, tmp / "bad_data.h5", edit)


def damaged_cache(edit: Callable[[h5py.File], None]) -> Setup:
    """{tmp}/emb.h5: an edited copy of the good embedding cache."""
    return lambda w, tmp: edit_copy(w.cache, tmp / "emb.h5", edit)


def random_file(name: str, size: int = 4096) -> Setup:
    return lambda w, tmp: write_random_bytes(tmp / name, size)


def write_random_bytes(path: Path, size: int = 4096) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(size))


def empty_file(name: str) -> Setup:
    return lambda w, tmp: (tmp / name).write_bytes(b"")


def copy_small(name: str) -> Setup:
    return lambda w, tmp: shutil.copy(w.small, tmp / name)


def blocker(w: World, tmp: Path) -> None:
    """{tmp}/blocker is a regular file, so no output can be written below it."""
    (tmp / "blocker").write_text("not a folder")


def robomimic(edit: Callable[[h5py.File], None] | None = None) -> Setup:
    """{tmp}/lift.hdf5: a small robomimic file (2 demos of 4 steps), optionally edited."""

    def setup(w: World, tmp: Path) -> None:
        path = write_robomimic(tmp / "lift.hdf5", steps=4)
        if edit is not None:
            with h5py.File(path, "a") as handle:
                edit(handle)

    return setup


def lerobot(edit: Callable[[Path], None]) -> Setup:
    """{tmp}/so100: an edited LeRobot v2 folder (1 episode of 4 frames)."""
    return lambda w, tmp: edit(write_lerobot(tmp / "so100", episodes=1, frames=4))


def encoder_variant(edit: Callable[[dict, dict], None]) -> Setup:
    """{tmp}/enc/encoder.safetensors: the good encoder with `edit(state, meta)` applied."""

    def setup(w: World, tmp: Path) -> None:
        state, meta = load_safetensors(w.encoder)
        edit(state, meta)
        save_safetensors(state, tmp / "enc" / "encoder.safetensors", meta)

    return setup


def predictor_variant(edit: Callable[[dict, dict], None]) -> Setup:
    """{tmp}/ac/predictor.safetensors: the good predictor with `edit(state, meta)` applied."""

    def setup(w: World, tmp: Path) -> None:
        state, meta = load_safetensors(w.predictor)
        edit(state, meta)
        save_safetensors(state, tmp / "ac" / "predictor.safetensors", meta)

    return setup


OTHER_HASH = encoder_variant(lambda state, meta: meta.update(weights_hash="0123456789abcdef"))


def predictor_of_other_encoder(w: World, tmp: Path) -> None:
    """The good predictor, but naming {tmp}/enc/encoder.safetensors (another weights hash) as its encoder."""
    OTHER_HASH(w, tmp)
    other = str(tmp / "enc" / "encoder.safetensors")
    predictor_variant(lambda state, meta: meta.update(encoder=other))(w, tmp)


def other_encoder_cache(w: World, tmp: Path) -> None:
    """{tmp}/other_emb.h5: a cache built with the good config by a different encoder (another hash)."""
    OTHER_HASH(w, tmp)
    cache = tmp / "other_emb.h5"
    assert run_main("cache", f"data={w.data}", f"encoder={tmp / 'enc'}", f"cache={cache}", *TINY_AC) == 0


def pt_pickle_encoder(w: World, tmp: Path) -> None:
    torch.save({"target_encoder": {"w": torch.zeros(2)}}, tmp / "vitl.pt")


def black_goal_image(w: World, tmp: Path) -> None:
    Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8)).save(tmp / "goal.png")


def existing_encoder_run(w: World, tmp: Path) -> None:
    shutil.copytree(w.encoder_run, tmp / "pretrain" / "tiny")


def override_json(key: str, field: str, value: object) -> Callable[[dict, dict], None]:
    """A checkpoint edit: set `field` inside the JSON config stored under metadata `key`."""

    def edit(state: dict, meta: dict) -> None:
        config = json.loads(meta[key])
        config[field] = value
        meta[key] = json.dumps(config)

    return edit


def nan_state_in_second_episode(h: h5py.File) -> None:
    name = sorted(h["data"])[1]
    states = h[f"data/{name}/obs/state"][()]
    states[3, 0] = np.nan
    replace(h, f"data/{name}/obs/state", states)


def episode_without_steps(h: h5py.File) -> None:
    replace(h, "data/ep_000000/actions", np.zeros((0, 7), np.float32))
    replace(h, "data/ep_000000/obs/state", np.zeros((1, 7), np.float32))
    replace(h, "data/ep_000000/obs/pixels", np.zeros((1, 16, 16, 3), np.uint8))
    h["data/ep_000000"].attrs.modify("num_steps", 0)


def grayscale_images(h: h5py.File) -> None:
    for group in ("obs", "next_obs"):
        for d in (0, 1):
            replace(h, f"data/demo_{d}/{group}/agentview_image", np.zeros((4, 84, 84, 1), np.uint8))


def first_half_of_small(w: World, tmp: Path) -> None:
    """{tmp}/cut.h5: the small dataset cut off halfway."""
    (tmp / "cut.h5").write_bytes(w.small.read_bytes()[: w.small.stat().st_size // 2])


def plain_hdf5(w: World, tmp: Path) -> None:
    """{tmp}/plain.h5: a valid HDF5 file that is not a jepa-wm dataset."""
    with h5py.File(tmp / "plain.h5", "w") as handle:
        handle["x"] = np.zeros(3)


def corrupt_videos(root: Path) -> None:
    for video in root.rglob("*.mp4"):
        write_random_bytes(video, 500)


# --------------------------------------------------------------------------- config show / envs

CONFIG_SHOW = Command(
    "config-show",
    ["config", "show"],
    [
        Case("unknown-key", ["tiny", "collect.nope=1"], ["collect.nope"]),
        Case("wrong-type", ["collect.episodes=abc"], ["collect.episodes"]),
        Case("unknown-preset", ["nonesuch"], ["nonesuch"]),
        Case("missing-yaml-file", ["{tmp}/missing.yaml"], ["missing.yaml"]),
        Case(
            "yaml-with-unknown-key",
            ["{tmp}/mine.yaml"],
            ["mine.yaml", "episodez"],
            setup=lambda w, tmp: (tmp / "mine.yaml").write_text("collect:\n  episodez: 3\n"),
        ),
        Case(
            "yaml-not-a-mapping",
            ["{tmp}/list.yaml"],
            ["list.yaml"],
            setup=lambda w, tmp: (tmp / "list.yaml").write_text("- 1\n- 2\n"),
        ),
        Case(
            "yaml-syntax-error",
            ["{tmp}/broken.yaml"],
            ["broken.yaml"],
            setup=lambda w, tmp: (tmp / "broken.yaml").write_text("collect: [unclosed\n"),
        ),
        Case("override-without-equals", ["tiny", "novalue"], ["novalue"]),
        Case("ambiguous-bare-key", ["tiny", "episodes=5"], ["collect.episodes", "eval.episodes"]),
        Case("image-size-out-of-range", ["env.image_size=1000"], ["env.image_size"]),
        Case("horizon-zero", ["plan.horizon=0"], ["plan.horizon"]),
        Case("discount-above-one", ["plan.discount=1.5"], ["plan.discount"]),
        Case("execute-beyond-horizon", ["plan.horizon=2", "plan.execute=3"], ["plan.execute"]),
        Case("unknown-device", ["run.device=tpu"], ["run.device"]),
        Case("run-name-with-slash", ["run.name=a/b"], ["run.name"]),
        Case("list-for-scalar", ["run.seed=[1,2]"], ["run.seed"]),
    ],
)

ENVS_SHOW = Command(
    "envs-show",
    ["envs", "show"],
    [
        Case("unknown-env", ["jepa_wm/Nope-v0", "--out", "{tmp}/scene.png"], ["jepa_wm/Nope-v0"]),
        Case("image-too-small", ["jepa_wm/Reach-v0", "--out", "{tmp}/scene.png", "--size", "8"], ["8"]),
        Case("unknown-split", ["jepa_wm/Reach-v0", "--out", "{tmp}/scene.png", "--split", "test"], ["test"]),
        Case(
            "out-folder-blocked",
            ["jepa_wm/Reach-v0", "--out", "{tmp}/blocker/scene.png", "--size", "16"],
            ["blocker"],
            setup=blocker,
            absent=["{tmp}/blocker/scene.png"],
        ),
    ],
    absent=["{tmp}/scene.png"],
)

# -------------------------------------------------------------------------------------- collect

COLLECT = Command(
    "collect",
    ["collect", "env=jepa_wm/Reach-v0", "episodes=1", "steps=2", "workers=1", "out={tmp}/c.h5"],
    [
        Case("zero-episodes", ["episodes=0"], ["collect.episodes"]),
        Case("negative-workers", ["workers=-1"], ["collect.workers"]),
        Case("oracle-policy", ["policy=oracle"], ["collect.policy"]),
        Case("unknown-policy", ["policy=magic"], ["magic"]),
        Case("unknown-env", ["env=jepa_wm/Nope-v0"], ["jepa_wm/Nope-v0"]),
        Case("missing-user-module", ["import=no_such_module_xyz"], ["no_such_module_xyz"]),
        Case(
            "out-folder-blocked",
            ["out={tmp}/blocker/c.h5"],
            ["blocker"],
            setup=blocker,
            absent=["{tmp}/blocker/c.h5"],
        ),
        Case(
            "out-exists-without-resume",
            [],
            ["c.h5", "resume=true"],
            setup=copy_small("c.h5"),
            absent=["{tmp}/c.h5.parts"],
        ),
        Case(  # 16x16 test env data in the file; this run would add 64x64 Reach
            "resume-into-incompatible-file",
            ["resume=true"],
            ["c.h5", "cannot resume"],
            setup=copy_small("c.h5"),
            absent=["{tmp}/c.h5.parts"],
        ),
    ],
    absent=["{tmp}/c.h5"],
)

# ------------------------------------------------------------------------------- data info/check

DATA_INFO = Command(
    "data-info",
    ["data", "info"],
    [
        Case("missing-file", ["{tmp}/none.h5"], ["none.h5"]),
        Case("empty-file", ["{tmp}/empty.h5"], ["empty.h5", "empty"], setup=empty_file("empty.h5")),
        Case("random-bytes", ["{tmp}/random.h5"], ["random.h5"], setup=random_file("random.h5")),
        Case("truncated-hdf5", ["{tmp}/cut.h5"], ["cut.h5"], setup=first_half_of_small),
        Case("hdf5-without-format", ["{tmp}/plain.h5"], ["plain.h5", "format"], setup=plain_hdf5),
        Case(
            "future-version",
            ["{tmp}/bad.h5"],
            ["bad.h5", "version"],
            setup=damaged_small(lambda h: h.attrs.modify("version", 2)),
        ),
        Case(
            "action-space-not-json",
            ["{tmp}/bad.h5"],
            ["bad.h5", "action_space"],
            setup=damaged_small(lambda h: h.attrs.modify("action_space", "low=-1")),
        ),
        Case(
            "episode-without-actions",
            ["{tmp}/bad.h5"],
            ["bad.h5", "ep_000001", "actions"],
            setup=damaged_small(lambda h: h.__delitem__("data/ep_000001/actions")),
        ),
        Case(
            "no-episodes",
            ["{tmp}/bad.h5"],
            ["bad.h5", "no episodes"],
            setup=damaged_small(lambda h: [h.__delitem__(f"data/{n}") for n in list(h["data"])]),
        ),
        Case(
            "empty-folder",
            ["{tmp}/folder"],
            ["folder", ".h5"],
            setup=lambda w, tmp: (tmp / "folder").mkdir(),
        ),
        Case(
            "preview-folder-blocked",
            ["{small}", "--preview", "{tmp}/blocker/sheet.png"],
            ["blocker"],
            setup=blocker,
            absent=["{tmp}/blocker/sheet.png"],
        ),
    ],
)


def replaced(key: str, value: np.ndarray) -> Callable[[h5py.File], None]:
    return lambda h: replace(h, key, value)


def check(id: str, edit: Callable[[h5py.File], None], expect: list[str]) -> Case:
    """`wm data check` on {tmp}/bad.h5, a copy of the small dataset damaged by `edit`."""
    return Case(id, ["{tmp}/bad.h5"], ["bad.h5", *expect], setup=damaged_small(edit))


NAN_ACTIONS = replaced("data/ep_000001/actions", np.full((5, 7), np.nan, np.float32))
INF_STATES = replaced("data/ep_000002/obs/state", np.full((6, 7), np.inf, np.float32))
FLOAT_PIXELS = replaced("data/ep_000000/obs/pixels", np.zeros((6, 16, 16, 3), np.float32))
RGBA_PIXELS = replaced("data/ep_000000/obs/pixels", np.zeros((6, 16, 16, 4), np.uint8))
LARGE_PIXELS = replaced("data/ep_000000/obs/pixels", np.zeros((6, 32, 32, 3), np.uint8))
SHORT_STATES = replaced("data/ep_000001/obs/state", np.zeros((5, 7), np.float32))
FLOAT64_ACTIONS = replaced("data/ep_000001/actions", np.zeros((5, 7), np.float64))

DATA_CHECK = Command(
    "data-check",
    ["data", "check"],
    [
        check("nan-actions", NAN_ACTIONS, ["ep_000001", "actions", "NaN"]),
        check("inf-states", INF_STATES, ["ep_000002", "obs/state", "infinite"]),
        check("float-pixels", FLOAT_PIXELS, ["ep_000000", "obs/pixels", "uint8"]),
        check("four-channel-pixels", RGBA_PIXELS, ["ep_000000", "obs/pixels", "16, 16, 3"]),
        check("wrong-image-size", LARGE_PIXELS, ["ep_000000", "obs/pixels", "32"]),
        check("states-one-row-short", SHORT_STATES, ["ep_000001", "obs/state"]),
        check("float64-actions", FLOAT64_ACTIONS, ["ep_000001", "actions", "float32"]),
        check(
            "num-steps-attr-lies", lambda h: h["data/ep_000000"].attrs.modify("num_steps", 9), ["num_steps"]
        ),
        check("missing-pixels", lambda h: h.__delitem__("data/ep_000002/obs/pixels"), ["obs/pixels"]),
        check("missing-data-group", lambda h: h.__delitem__("data"), ["'data'"]),
        check("episode-without-steps", episode_without_steps, ["ep_000000", "no steps"]),
        check("missing-root-attribute", lambda h: h.attrs.__delitem__("state_dim"), ["state_dim"]),
    ],
    code=1,  # `wm data check` found problems in a readable file
)

# ---------------------------------------------------------------------------------- data import


def robomimic_import(*extra: str) -> list[str]:
    return ["--format", "robomimic", "{tmp}/lift.hdf5", "{tmp}/out.h5", *extra]


def lerobot_import() -> list[str]:
    return ["--format", "lerobot", "{tmp}/so100", "{tmp}/out.h5"]


DATA_IMPORT = Command(
    "data-import",
    ["data", "import"],
    [
        Case("robomimic-random-bytes", robomimic_import(), ["lift.hdf5"], setup=random_file("lift.hdf5")),
        Case(
            "robomimic-without-data-group",
            robomimic_import(),
            ["lift.hdf5", "'data'"],
            setup=robomimic(lambda h: h.__delitem__("data")),
        ),
        Case(
            "robomimic-second-demo-missing-key",
            robomimic_import(),
            ["lift.hdf5", "demo_1", "robot0_eef_pos"],
            setup=robomimic(lambda h: h.__delitem__("data/demo_1/obs/robot0_eef_pos")),
        ),
        Case(
            "robomimic-unknown-camera",
            robomimic_import("--camera", "wrist"),
            ["lift.hdf5", "wrist_image"],
            setup=robomimic(),
        ),
        Case(
            "robomimic-nan-actions",
            robomimic_import(),
            ["out.h5", "actions", "NaN"],
            setup=robomimic(lambda h: replace(h, "data/demo_1/actions", np.full((4, 7), np.nan))),
        ),
        Case(
            "robomimic-action-dim-changes",
            robomimic_import(),
            ["out.h5", "actions"],
            setup=robomimic(lambda h: replace(h, "data/demo_1/actions", np.zeros((4, 6)))),
        ),
        Case(
            "robomimic-grayscale-images",
            robomimic_import(),
            ["obs/pixels", "3"],
            setup=robomimic(grayscale_images),
        ),
        Case(
            "unknown-format",
            ["--format", "rlds", "{tmp}/lift.hdf5", "{tmp}/out.h5"],
            ["--format", "rlds"],
            setup=robomimic(),
        ),
        Case(
            "image-size-too-small",
            robomimic_import("--image-size", "8"),
            ["--image-size"],
            setup=robomimic(),
        ),
        Case(
            "out-already-exists",
            robomimic_import(),
            ["out.h5", "already exists"],
            setup=all_of(copy_small("out.h5"), robomimic()),
            absent=["{tmp}/out.h5.parts"],
        ),
        Case(
            "out-folder-blocked",
            ["--format", "robomimic", "{tmp}/lift.hdf5", "{tmp}/blocker/out.h5"],
            ["blocker"],
            setup=all_of(robomimic(), blocker),
            absent=["{tmp}/blocker/out.h5", "{tmp}/blocker/out.h5.parts"],
        ),
        Case(
            "lerobot-without-info",
            lerobot_import(),
            ["so100", "info.json"],
            setup=lerobot(lambda root: (root / "meta" / "info.json").unlink()),
        ),
        Case(
            "lerobot-info-not-json",
            lerobot_import(),
            ["info.json"],
            setup=lerobot(lambda root: (root / "meta" / "info.json").write_text("{fps: 10")),
        ),
        Case(
            "lerobot-missing-video",
            lerobot_import(),
            ["so100", "episode_000000"],
            setup=lerobot(lambda root: shutil.rmtree(root / "videos")),
        ),
        Case(
            "lerobot-corrupt-video", lerobot_import(), ["episode_000000.mp4"], setup=lerobot(corrupt_videos)
        ),
    ],
    absent=["{tmp}/out.h5", "{tmp}/out.h5.parts"],
)

# ------------------------------------------------------------------------------ pretrain / probe

PRETRAIN = Command(
    "pretrain",
    ["pretrain", "data={data}", "run.root={tmp}", "max_steps=1", "batch_size=4", *TINY_MODEL],
    [
        Case("missing-data", ["data={tmp}/none.h5"], ["none.h5"]),
        Case("random-bytes-data", ["data={tmp}/random.h5"], ["random.h5"], setup=random_file("random.h5")),
        Case("episodes-shorter-than-clip", ["clip_len=20"], ["{data.name}", "clip of 20 frames"]),
        Case("image-size-mismatch", ["env.image_size=32"], ["{data.name}", "image_size"]),
        Case("negative-batch-size", ["batch_size=-4"], ["pretrain.batch_size"]),
        Case("zero-lr", ["lr=0"], ["pretrain.lr"]),
        Case("lr-not-a-number", ["lr=fast"], ["pretrain.lr"]),
        Case("heads-do-not-divide-width", ["jepa.encoder.num_heads=5"], ["num_heads"]),
        Case("unknown-method", ["method=vae"], ["pretrain.method"]),
        Case("unknown-schedule", ["schedule=step"], ["pretrain.schedule"]),
        Case(
            "run-root-blocked",
            ["run.root={tmp}/blocker/runs"],
            ["blocker"],
            setup=blocker,
            absent=["{tmp}/blocker/runs"],
        ),
        Case(
            "existing-run-without-resume",
            [],
            ["pretrain/tiny", "resume=true"],
            setup=existing_encoder_run,
            absent=[],
            unchanged=["{tmp}/pretrain/tiny/encoder.safetensors"],
        ),
    ],
    absent=["{tmp}/pretrain/tiny/checkpoints", "{tmp}/pretrain/tiny/encoder.safetensors"],
)

PROBE = Command(
    "probe",
    ["probe"],
    [
        Case("missing-encoder", ["{tmp}/nothing", "--episodes", "2", "--steps", "2"], ["nothing"]),
        Case("grids-not-integers", ["pixels", "--grids", "1,two"], ["--grids", "1,two"]),
        Case(
            "random-bytes-encoder",
            ["{tmp}/encoder.safetensors", "--episodes", "2", "--steps", "2"],
            ["encoder.safetensors"],
            setup=random_file("encoder.safetensors"),
        ),
        Case(
            "predictor-given-as-encoder",
            ["{predictor}", "--episodes", "2", "--steps", "2"],
            ["predictor.safetensors"],
        ),
        Case("unknown-env", ["pixels", "--env", "jepa_wm/Nope-v0", "--episodes", "2"], ["jepa_wm/Nope-v0"]),
    ],
)

# ----------------------------------------------------------------------------------- cache/train

CACHE = Command(
    "cache",
    ["cache", *stage2("{tmp}/emb.h5")],
    [
        Case(
            "random-bytes-encoder",
            ["encoder={tmp}/encoder.safetensors"],
            ["encoder.safetensors"],
            setup=random_file("encoder.safetensors"),
        ),
        Case("pt-pickle-encoder", ["encoder={tmp}/vitl.pt"], ["vitl.pt"], setup=pt_pickle_encoder),
        Case("predictor-given-as-encoder", ["encoder={predictor}"], ["predictor.safetensors"]),
        Case(
            "encoder-missing-tensor",
            ["encoder={tmp}/enc/encoder.safetensors"],
            ["encoder.safetensors", "blocks.0.mlp.fc1.weight"],
            setup=encoder_variant(lambda state, meta: state.pop("blocks.0.mlp.fc1.weight")),
        ),
        Case(
            "encoder-wrong-size",
            ["encoder={tmp}/enc/encoder.safetensors"],
            ["encoder.safetensors", "expected"],
            setup=encoder_variant(override_json("encoder_config", "embed_dim", 128)),
        ),
        Case(
            "encoder-config-not-json",
            ["encoder={tmp}/enc/encoder.safetensors"],
            ["encoder.safetensors", "encoder_config"],
            setup=encoder_variant(lambda state, meta: meta.update(encoder_config="{embed_dim: 64")),
        ),
        Case("missing-data", ["data={tmp}/none.h5"], ["none.h5"]),
        Case(
            "nan-states-in-data",
            ["data={tmp}/bad_data.h5"],
            ["bad_data.h5", "obs/state"],
            setup=damaged_data(nan_state_in_second_episode),
        ),
        Case("empty-data-file", ["data={tmp}/empty.h5"], ["empty.h5", "empty"], setup=empty_file("empty.h5")),
        Case(
            "out-folder-blocked",
            [],
            ["blocker"],
            setup=blocker,
            base=["cache", *stage2("{tmp}/blocker/emb.h5")],
            absent=["{tmp}/blocker/emb.h5"],
        ),
    ],
    absent=["{tmp}/emb.h5"],
)


def train_on(cache: str) -> list[str]:
    """`wm train` reading the embedding cache `cache` instead of the good one."""
    return ["train", *stage2(cache), "max_steps=1", "batch_size=4"]


TRAIN = Command(
    "train",
    train_on("{cache}"),
    [
        Case("missing-cache", [], ["none.h5", "wm cache"], base=train_on("{tmp}/none.h5")),
        Case(
            "cache-from-another-encoder",
            [],
            ["other_emb.h5", "encoder_hash"],
            setup=other_encoder_cache,
            base=train_on("{tmp}/other_emb.h5"),
        ),
        Case(
            "cache-random-bytes",
            [],
            ["random.h5"],
            setup=random_file("random.h5"),
            base=train_on("{tmp}/random.h5"),
        ),
        Case(
            "cache-episode-missing-latents",
            [],
            ["emb.h5", "ep_000002", "latents"],
            setup=damaged_cache(lambda h: h.__delitem__("ep_000002/latents")),
            base=train_on("{tmp}/emb.h5"),
        ),
        Case(
            "cache-latents-wrong-shape",
            [],
            ["emb.h5", "ep_000001", "latents"],
            setup=damaged_cache(lambda h: replace(h, "ep_000001/latents", np.zeros((13, 4, 8), np.float16))),
            base=train_on("{tmp}/emb.h5"),
        ),
        Case(
            "cache-without-episodes",
            [],
            ["emb.h5", "no episodes"],
            setup=damaged_cache(lambda h: [h.__delitem__(n) for n in list(h)]),
            base=train_on("{tmp}/emb.h5"),
        ),
        Case("pooling-differs-from-cache", ["ac.grid_h=1", "ac.grid_w=1"], ["emb.h5", "latent_pool"]),
        Case("clip-longer-than-episodes", ["clip_len=40"], ["train.clip_len", "40"]),
        Case("batch-larger-than-data", ["batch_size=5000"], ["train.batch_size", "5000"]),
        Case("clip-len-one", ["clip_len=1"], ["train.clip_len"]),
        Case("auto-steps-zero", ["auto_steps=0"], ["train.auto_steps"]),
        Case("negative-lr", ["lr=-0.001"], ["train.lr"]),
        Case("encoder-gone", ["encoder={tmp}/nothing"], ["nothing", "wm pretrain"]),
    ],
    absent=["{tmp}/ac/tiny/checkpoints", "{tmp}/ac/tiny/predictor.safetensors"],
)

# ----------------------------------------------------------------------------------- eval / plan

PREDICTOR_VARIANT = "world_model={tmp}/ac/predictor.safetensors"

EVAL = Command(
    "eval",
    [
        "eval",
        "tasks=[jepa_wm/Reach-v0]",
        "episodes=1",
        "budget=1",
        "plan.samples=4",
        "plan.iterations=1",
        "sim_samples=4",
        "sim_iterations=1",
        "run.root={tmp}",
    ],
    [
        Case("unknown-row", ["rows=[magic]"], ["eval.rows"]),
        Case("no-tasks", ["tasks=[]"], ["eval.tasks"]),
        Case("unknown-task", ["tasks=[jepa_wm/Nope-v0]"], ["jepa_wm/Nope-v0"]),
        Case("zero-budget", ["budget=0"], ["eval.budget"]),
        Case("negative-episodes", ["episodes=-1"], ["eval.episodes"]),
        Case("unknown-planner", ["plan.planner=magic"], ["plan.planner"]),
        Case("learned-row-without-world-model", ["rows=[learned]"], ["eval.world_model"]),
        Case("world-model-missing", ["rows=[learned]", "world_model={tmp}/nothing"], ["nothing"]),
        Case(
            "encoder-given-as-predictor",
            ["rows=[learned]", "world_model={encoder}"],
            ["encoder.safetensors", "format"],
        ),
        Case(
            "random-bytes-predictor",
            ["rows=[learned]", "world_model={tmp}/predictor.safetensors"],
            ["predictor.safetensors"],
            setup=random_file("predictor.safetensors"),
        ),
        Case(
            "predictor-missing-tensor",
            ["rows=[learned]", PREDICTOR_VARIANT],
            ["predictor.safetensors"],
            setup=predictor_variant(lambda state, meta: state.pop(sorted(state)[0])),
        ),
        Case(
            "predictor-wrong-size",
            ["rows=[learned]", PREDICTOR_VARIANT],
            ["predictor.safetensors"],
            setup=predictor_variant(override_json("ac_config", "width", 64)),
        ),
        Case(
            "predictor-config-not-json",
            ["rows=[learned]", PREDICTOR_VARIANT],
            ["predictor.safetensors", "ac_config"],
            setup=predictor_variant(lambda state, meta: meta.update(ac_config="{width: 32")),
        ),
        Case(
            "predictor-encoder-changed",
            ["rows=[learned]", PREDICTOR_VARIANT],
            ["predictor.safetensors", "changed"],
            setup=predictor_of_other_encoder,
        ),
        Case("simulator-encoder-missing", ["rows=[simulator]", "eval.encoder={tmp}/nothing"], ["nothing"]),
        Case(
            "output-folder-blocked",
            ["rows=[oracle]", "run.root={tmp}/blocker/runs"],
            ["blocker"],
            setup=blocker,
            absent=["{tmp}/blocker/runs"],
        ),
    ],
    absent=["{tmp}/eval"],
)

TINY_PLAN = ["eval.budget=1", "plan.samples=4", "plan.iterations=1", "sim_samples=4", "sim_iterations=1"]

PLAN = Command(
    "plan",
    ["plan", *TINY_PLAN, "run.root={tmp}", "--video", "{tmp}/plan.mp4"],
    [
        Case("negative-fps", ["--fps", "-1"], ["--fps"]),
        Case("unknown-row", ["--row", "magic"], ["--row", "magic"]),
        Case("goal-image-missing", ["--row", "simulator", "--goal-image", "{tmp}/goal.png"], ["goal.png"]),
        Case(
            "goal-image-random-bytes",
            ["--row", "simulator", "--goal-image", "{tmp}/goal.png"],
            ["goal.png"],
            setup=random_file("goal.png"),
        ),
        Case(
            "goal-image-with-subgoals",
            [
                "--row",
                "simulator",
                "--env",
                "jepa_wm/Push-v0",
                "eval.subgoals=[jepa_wm/Push-v0]",
                "--goal-image",
                "{tmp}/goal.png",
            ],
            ["--goal-image", "subgoals"],
            setup=black_goal_image,
        ),
        Case(
            "oracle-with-goal-image",
            ["--row", "oracle", "--goal-image", "{tmp}/goal.png"],
            ["--goal-image", "oracle"],
            setup=random_file("goal.png"),
        ),
        Case(
            "video-folder-blocked",
            [],
            ["blocker"],
            setup=blocker,
            base=["plan", *TINY_PLAN, "--row", "oracle", "--video", "{tmp}/blocker/plan.mp4"],
            absent=["{tmp}/blocker/plan.mp4"],
        ),
        Case("horizon-zero", ["plan.horizon=0"], ["plan.horizon"]),
        Case("unknown-env", ["--row", "oracle", "--env", "jepa_wm/Nope-v0"], ["jepa_wm/Nope-v0"]),
        Case(
            "learned-random-bytes-predictor",
            ["--row", "learned", "eval.world_model={tmp}/predictor.safetensors"],
            ["predictor.safetensors"],
            setup=random_file("predictor.safetensors"),
        ),
    ],
    absent=["{tmp}/plan.mp4"],
)

# ---------------------------------------------------------------------- energy / rollout-report

ENERGY = Command(
    "energy",
    ["energy", "{predictor_run}", "{data}", "--out", "{tmp}/energy.png"],
    [
        Case("dims-not-integers", ["--dims", "x,y"], ["--dims", "x,y"]),
        Case("three-dims", ["--dims", "0,1,2"], ["--dims", "0,1,2"]),
        Case("same-dim-twice", ["--dims", "0,0"], ["action dims"]),
        Case("zero-threads", ["--threads", "0"], ["--threads"]),
        Case("episode-out-of-range", ["--episode", "99"], ["--episode", "99"]),
        Case("step-out-of-range", ["--episode", "0", "--step", "99"], ["--step", "99"]),
        Case("grid-of-one", ["--grid", "1"], ["--grid"]),
        Case(
            "run-missing",
            [],
            ["nothing"],
            base=["energy", "{tmp}/nothing", "{data}", "--out", "{tmp}/energy.png"],
        ),
        Case(
            "data-missing",
            [],
            ["none.h5"],
            base=["energy", "{predictor_run}", "{tmp}/none.h5", "--out", "{tmp}/energy.png"],
        ),
    ],
    absent=["{tmp}/energy.png"],
)

ROLLOUT_REPORT = Command(
    "rollout-report",
    ["rollout-report", "{predictor_run}", "{data}"],
    [
        Case("zero-horizon", ["--horizon", "0"], ["--horizon"]),
        Case("horizon-beyond-episodes", ["--horizon", "50"], ["no held-out episode", "--horizon"]),
        Case("zero-threads", ["--threads", "0"], ["--threads"]),
        Case("run-missing", [], ["nothing"], base=["rollout-report", "{tmp}/nothing", "{data}"]),
        Case("data-missing", [], ["none.h5"], base=["rollout-report", "{predictor_run}", "{tmp}/none.h5"]),
    ],
    absent=["{predictor_run}/rollout_report.json"],
)

# ------------------------------------------------------------------------- baseline / bench / demo

BASELINE = Command(
    "baseline",
    ["baseline"],
    [
        Case("unknown-kind", ["jpeg", "--out", "{tmp}/enc"], ["jpeg"], absent=["{tmp}/enc"]),
        Case(
            "output-folder-blocked",
            ["pixels", "--out", "{tmp}/blocker/enc"],
            ["blocker"],
            setup=blocker,
            absent=["{tmp}/blocker/enc"],
        ),
    ],
)

BENCH = Command(
    "bench",
    ["bench"],
    [
        Case("unknown-benchmark", ["nonesuch"], ["nonesuch"]),
        Case(
            "ablation-unknown-latent",
            ["ablation", "--latents", "ours,jpeg", "--results-dir", "{tmp}/results"],
            ["--latents", "jpeg"],
            absent=["{tmp}/results"],
        ),
        Case(
            "ablation-zero-episodes",
            ["ablation", "--episodes", "0", "--root", "{tmp}/runs"],
            ["--episodes"],
            absent=["{tmp}/runs"],
        ),
        Case(
            "ablation-unknown-row",
            ["ablation", "--rows", "learned,oracle", "--root", "{tmp}/runs"],
            ["--rows", "oracle"],
            absent=["{tmp}/runs"],
        ),
        Case("ablation-unknown-option", ["ablation", "--episode", "3"], ["--episode"]),
        Case(
            "ablation-unknown-config-key",
            ["ablation", "--root", "{tmp}/runs", "plan.samplez=3"],
            ["plan.samplez"],
            absent=["{tmp}/runs"],
        ),
    ],
)

DEMO = Command(  # each is refused before the pipeline starts; the outputs would go under {tmp}
    "demo",
    ["demo", "run.root={tmp}", "collect.out={tmp}/demo.h5"],
    [
        Case("unknown-key", ["collect.nope=1"], ["collect.nope"]),
        Case("unknown-preset", ["preset=nonesuch"], ["nonesuch"]),
        Case("zero-episodes", ["collect.episodes=0"], ["collect.episodes"]),
        Case("horizon-zero", ["plan.horizon=0"], ["plan.horizon"]),
    ],
    absent=["{tmp}/demo.h5", "{tmp}/demo"],
)

COMMANDS = [
    CONFIG_SHOW,
    ENVS_SHOW,
    COLLECT,
    DATA_INFO,
    DATA_CHECK,
    DATA_IMPORT,
    PRETRAIN,
    PROBE,
    CACHE,
    TRAIN,
    EVAL,
    PLAN,
    ENERGY,
    ROLLOUT_REPORT,
    BASELINE,
    BENCH,
    DEMO,
]
CASES = [(command, case) for command in COMMANDS for case in command.cases]

# ------------------------------------------------------------------------------------------ test

LEFTOVERS = ("*.tmp", "*.tmp-*", ".*.tmp*", "*.parts")


def leftovers(root: Path) -> set[Path]:
    return {p for pattern in LEFTOVERS for p in root.rglob(pattern)}


@pytest.mark.parametrize(
    ("command", "case"), CASES, ids=[f"{command.name}/{case.id}" for command, case in CASES]
)
def test_bad_input_is_one_clear_line(
    command: Command, case: Case, world: World, tmp_path: Path, capsys
) -> None:
    if case.setup is not None:
        case.setup(world, tmp_path)
    base = command.base if case.base is None else case.base
    argv = [world.fill(word, tmp_path) for word in [*base, *case.argv]]
    absent = [Path(world.fill(p, tmp_path)) for p in (command.absent if case.absent is None else case.absent)]
    unchanged = {path: path.read_bytes() for path in (Path(world.fill(p, tmp_path)) for p in case.unchanged)}
    shared_before = leftovers(world.root)
    capsys.readouterr()

    code = run_main(*argv)

    out, err = capsys.readouterr()
    text = out + err
    assert code == command.code, f"exit {code}, expected {command.code}; output:\n{text}"
    assert "Traceback" not in text and "internal error" not in text, text
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got:\n{err}"
    assert "error" not in out.lower(), out
    for fragment in (world.fill(e, tmp_path) for e in case.expect):
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    for path in absent:
        assert not path.exists(), f"partial output left behind: {path}"
    for path, content in unchanged.items():
        assert path.read_bytes() == content, f"{path} was modified"
    assert not leftovers(tmp_path), f"temp files left behind: {leftovers(tmp_path)}"
    shared_after = leftovers(world.root)
    assert shared_after == shared_before, (
        f"temp files left in the shared inputs: {shared_after - shared_before}"
    )


def test_every_command_has_its_table() -> None:
    assert len(CASES) >= 141
    assert len({(command.name, case.id) for command, case in CASES}) == len(CASES), "duplicate case ids"
    names = {command.name for command in COMMANDS}
    assert {"config-show", "envs-show", "collect", "data-info", "data-check", "data-import"} <= names
    assert {"pretrain", "probe", "cache", "train", "eval", "plan", "baseline", "bench"} <= names
    assert {"energy", "rollout-report", "demo"} <= names
