"""Typed configuration: omegaconf structured dataclasses, YAML presets, `key=value` overrides.

Resolution order (later wins): dataclass defaults -> `configs/<preset>.yaml` -> command-line
overrides. Unknown keys and wrong types are rejected by omegaconf's structured mode; range checks
live in each section's `validate()`. Every failure becomes one `ConfigError` line naming the key.

A subcommand may pass `section="collect"`: then a bare `episodes=10` means `collect.episodes=10`,
so the common case stays short (`wm collect episodes=10`) while `env.split=heldout` still works.
The override language itself (aliases, list indices, error lines) is `worldmodel.config.overrides`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from importlib.resources import files
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from planners.config import PlannerConfig
from worldmodel.common.atomic import write_text_atomic
from worldmodel.common.errors import ConfigError
from worldmodel.common.errors import require as _check
from worldmodel.config.overrides import describe_error, merge_overrides, qualify, split_preset
from worldmodel.models.ac_predictor import ACPredictorConfig
from worldmodel.models.jepa import JEPAConfig, PredictorConfig
from worldmodel.models.readout import ReadoutConfig

# The YAML presets: configs/ in the checkout, installed as the package `worldmodel.presets` (so a
# wheel has them); a source tree used through PYTHONPATH without installing reads configs/ directly.
try:
    CONFIG_DIR = Path(str(files("worldmodel.presets")))
except ModuleNotFoundError:
    CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
DEFAULT_PRESET = "tiny"
SPLITS = ("train", "heldout")
# Lightning strategies a run may scale out with (`run.strategy`; `run.devices` processes).
STRATEGIES = ("auto", "ddp", "ddp_spawn", "fsdp")


@dataclass
class RunConfig:
    """Where outputs go and how the process uses the machine."""

    name: str = "tiny"
    root: str = "runs"
    seed: int = 0
    # Threads for torch: 1 is fastest for small batches when anything else runs on 2 cores.
    num_threads: int = 1
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # Scale-out through Lightning: e.g. strategy=ddp devices=2 trains in 2 processes (gloo on CPU).
    strategy: str = "auto"  # auto | ddp | ddp_spawn | fsdp
    devices: int = 1

    def validate(self) -> None:
        _check(
            self.name != "" and "/" not in self.name, "run.name", "a non-empty name without '/'", self.name
        )
        _check(self.num_threads >= 1, "run.num_threads", "an integer >= 1", self.num_threads)
        _check(
            self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"),
            "run.device",
            "auto, cpu, cuda or cuda:N",
            self.device,
        )
        _check(self.strategy in STRATEGIES, "run.strategy", " | ".join(STRATEGIES), self.strategy)
        _check(self.devices >= 1, "run.devices", "an integer >= 1", self.devices)


@dataclass
class EnvConfig:
    """Which gymnasium env and how it looks. Any protocol-following id works (see envs/)."""

    id: str = "jepa_wm/Reach-v0"
    image_size: int = 64
    split: str = "train"
    distractors: int = 0
    # Python module to import before making the env, so users can register their own ids.
    user_module: str = ""

    def validate(self) -> None:
        _check(16 <= self.image_size <= 256, "env.image_size", "an integer in 16..256", self.image_size)
        _check(self.split in SPLITS, "env.split", " or ".join(SPLITS), self.split)
        _check(self.distractors >= 0, "env.distractors", "an integer >= 0", self.distractors)


@dataclass
class CollectConfig:
    """Reward-free data collection (`wm collect`)."""

    envs: list[str] = field(default_factory=lambda: ["jepa_wm/Reach-v0", "jepa_wm/Push-v0"])
    episodes: int = 200
    steps: int = 50
    policy: str = "play"
    workers: int = 2
    out: str = "datasets/tiny_play.h5"
    resume: bool = False

    def validate(self) -> None:
        _check(len(self.envs) > 0, "collect.envs", "a non-empty list of env ids", self.envs)
        _check(self.episodes >= 1, "collect.episodes", "an integer >= 1", self.episodes)
        _check(self.steps >= 1, "collect.steps", "an integer >= 1", self.steps)
        _check(self.workers >= 1, "collect.workers", "an integer >= 1", self.workers)
        _check(self.out != "", "collect.out", "an output path", self.out)


# oracle: true distance + simulator; simulator: latent energy + simulator; learned: the world model;
# baselines: random (uniform random actions) and shooting (random shooting with the learned model).
EVAL_ROWS = ("oracle", "simulator", "learned", "random", "shooting")


@dataclass
class EvalConfig:
    """Zero-shot goal-image evaluation (`wm eval`): which tasks, which rows, how many episodes."""

    tasks: list[str] = field(default_factory=lambda: ["jepa_wm/Reach-v0", "jepa_wm/Push-v0"])
    episodes: int = 10
    budget: int = 30  # MPC steps per episode
    split: str = "heldout"
    # oracle: true task distance + simulator dynamics (the planner's ceiling);
    # simulator: latent energy + simulator dynamics (the encoder alone);
    # learned: latent energy + the learned predictor (the full world model).
    rows: list[str] = field(default_factory=lambda: ["oracle", "simulator"])
    encoder: str = "pixels"  # pixels | random | path to a pretrain run folder
    world_model: str = ""  # AC run folder (runs/ac/<name>) for the 'learned' row
    latent_grid: int = 4  # tokens per side the planner's latent is pooled to
    # Simulator row only: join the object's (x, y), found by its colour in each frame, times this
    # weight, to the latent (worldmodel/models/object_locator.py; issue 21's object term). 0 = off.
    # A run trained with readout.object_weight has it in its own latent already.
    object_weight: float = 0.0
    object_temperature: float = 0.01  # softmax temperature over pixels of the colour distance
    sim_samples: int = 64  # simulator rows are costly: fewer samples, said in the output
    sim_iterations: int = 3
    # cem plan output of the simulator rows: with so few samples the elites' mean is noise of
    # about one step near the goal, the best sampled sequence is not (benchmarks/experiments.md).
    sim_output: str = "best"
    # Control cost of the simulator rows (plan.action_cost is the learned row's): the oracle's energy
    # is in metres and the simulator row's in its encoder's units, so a cost set for the learned
    # row's latent would swamp them.
    sim_action_cost: float = 0.0
    # Episodes of the diagnostic rows (oracle, simulator: they simulate every candidate on the
    # CPU); 0 = eval.episodes, as for every other row.
    diagnostic_episodes: int = 0
    # Index of the first episode played: episode i of the split plays seed 1_000_000 + 1000 run.seed
    # + i and its planner draws from generator plan.seed + i, so episodes 5-9 played alone
    # (first_episode=5 episodes=5) are those of a 10-episode run (`wm bench planners --chunk`).
    first_episode: int = 0
    # Env ids whose episodes plan towards the task's sub-goal images in turn, each for an equal
    # share of the budget, the goal image last (envs/tasks.py `subgoals`): PickPlace = open hand
    # above the cube, hand closed on it, goal (as V-JEPA 2-AC does for pick-and-place); Push =
    # closed hand behind the cube, goal. Reach has none. Default: none (the goal image only).
    subgoals: list[str] = field(default_factory=list)
    name: str = "eval"
    # A folder: every episode played is written there (frames, states, executed actions) as an
    # episode store per task and row, <row>_<Task>.h5, to train on the planner's own experience
    # (play them with eval.split=train). Empty = none. (worldmodel/evaluation/episode_log.py)
    save_episodes: str = ""

    def validate(self) -> None:
        _check(len(self.tasks) > 0, "eval.tasks", "a non-empty list of env ids", self.tasks)
        _check(self.episodes >= 1, "eval.episodes", "an integer >= 1", self.episodes)
        _check(self.budget >= 1, "eval.budget", "an integer >= 1", self.budget)
        _check(self.split in SPLITS, "eval.split", " or ".join(SPLITS), self.split)
        bad = [r for r in self.rows if r not in EVAL_ROWS]
        _check(not bad and len(self.rows) > 0, "eval.rows", f"a list of {', '.join(EVAL_ROWS)}", self.rows)
        _check(self.latent_grid >= 1, "eval.latent_grid", "an integer >= 1", self.latent_grid)
        _check(self.object_weight >= 0, "eval.object_weight", "a number >= 0", self.object_weight)
        _check(
            self.object_temperature > 0, "eval.object_temperature", "a number > 0", self.object_temperature
        )
        _check(self.sim_samples >= 1, "eval.sim_samples", "an integer >= 1", self.sim_samples)
        _check(self.sim_iterations >= 1, "eval.sim_iterations", "an integer >= 1", self.sim_iterations)
        _check(self.sim_output in ("mean", "best"), "eval.sim_output", "mean | best", self.sim_output)
        _check(self.sim_action_cost >= 0, "eval.sim_action_cost", "a number >= 0", self.sim_action_cost)
        _check(self.first_episode >= 0, "eval.first_episode", "an integer >= 0", self.first_episode)
        _check(
            self.diagnostic_episodes >= 0,
            "eval.diagnostic_episodes",
            "an integer >= 0",
            self.diagnostic_episodes,
        )


PRETRAIN_METHODS = ("jepa", "mae")


@dataclass
class MAESection:
    """The MAE baseline's own parts (`pretrain.method=mae`); encoder and masks come from `jepa.*`."""

    decoder: PredictorConfig = field(default_factory=PredictorConfig)
    norm_pix: bool = True  # regress per-patch normalised pixels

    def validate(self) -> None:
        self.decoder.validate("mae.decoder")


@dataclass
class PretrainConfig:
    """Stage-1 training schedule and data."""

    data: str = "datasets/tiny_play.h5"
    max_steps: int = 600
    batch_size: int = 16
    clip_len: int = 4
    frame_skip: int = 1
    lr: float = 5e-4
    warmup_steps: int = 60
    schedule: str = "cosine"
    weight_decay: float = 0.04
    num_workers: int = 0
    log_every: int = 10
    checkpoint_every: int = 100
    # Wall-clock cap in minutes (0 = none): training stops at max_steps or here, whichever is first,
    # and exports what it has (a preset that must fit a fixed time, e.g. one lent GPU call).
    max_minutes: float = 0.0
    resume: bool = False
    # jepa: V-JEPA (latent prediction, EMA target); mae: the pixel-reconstruction baseline on the
    # same backbone (jepa.encoder), masks (jepa.masks), data and schedule; decoder size in mae.*.
    method: str = "jepa"
    # Collapse guard: stop once, after warmup, the logged target_std (mae: context_std) falls below
    # this. 0 = off.
    min_target_std: float = 0.0

    def validate(self) -> None:
        _check(self.method in PRETRAIN_METHODS, "pretrain.method", " | ".join(PRETRAIN_METHODS), self.method)
        _check(self.min_target_std >= 0, "pretrain.min_target_std", "a number >= 0", self.min_target_std)
        _check(self.max_steps >= 1, "pretrain.max_steps", "an integer >= 1", self.max_steps)
        _check(self.max_minutes >= 0, "pretrain.max_minutes", "a number >= 0 (0 = no cap)", self.max_minutes)
        _check(self.batch_size >= 1, "pretrain.batch_size", "an integer >= 1", self.batch_size)
        _check(self.clip_len >= 1, "pretrain.clip_len", "an integer >= 1", self.clip_len)
        _check(self.lr > 0, "pretrain.lr", "a number > 0", self.lr)
        _check(self.warmup_steps >= 0, "pretrain.warmup_steps", "an integer >= 0", self.warmup_steps)
        _check(
            self.schedule in ("constant", "cosine"), "pretrain.schedule", "constant | cosine", self.schedule
        )
        _check(
            self.checkpoint_every >= 1, "pretrain.checkpoint_every", "an integer >= 1", self.checkpoint_every
        )


@dataclass
class TrainConfig:
    """Stage-2 training of the action-conditioned predictor on cached latents (`wm cache`, `wm train`)."""

    data: str = "datasets/tiny_play.h5"
    encoder: str = "runs/pretrain/tiny"  # pretrain run folder or encoder.safetensors
    cache: str = ""  # embedding cache path; empty = <data>.embeddings.h5
    clip_len: int = 4  # frames per training window (teacher forcing over clip_len - 1 steps)
    batch_size: int = 32
    max_steps: int = 800
    lr: float = 3e-4
    warmup_steps: int = 50
    weight_decay: float = 0.04
    auto_steps: int = 2
    # 1 = L1 (official); 2 = half squared error, whose optimum is the mean next latent rather than
    # the median (which, for small sparse frame changes, is the last frame itself).
    loss_exp: float = 1.0
    log_every: int = 10
    checkpoint_every: int = 100
    # Wall-clock cap in minutes (0 = none): training stops at max_steps or here, whichever is first,
    # and exports what it has (a preset that must fit a fixed time, e.g. one lent GPU call).
    max_minutes: float = 0.0
    resume: bool = False
    # true: read latents from the embedding cache (`wm cache`); false: encode each batch's frames
    # with the frozen encoder on the fly (no cache needed, slower: see benchmarks/cache_speed.py).
    from_cache: bool = True
    # Per-clip colour jitter of the frames before the frozen encoder (worldmodel/models/augment.py); 0 = off.
    # Needs from_cache=false (a cache holds one appearance per frame).
    color_jitter: float = 0.0
    # Colour-augmented copies of every episode in the embedding cache (augment.colour_view, one
    # random appearance per copy and episode, seeded): AC training (and the keypoint readout) see
    # 1 + augment_copies appearances of each trajectory. 0 = the frames as recorded.
    augment_copies: int = 0
    augment_strength: float = 1.0
    # How planner rollouts update the state (stored in the run): compose (xyz/gripper add, euler-xyz
    # rotation composes as the arm env does) | add (every dim adds) | hold | auto (compose for 7-D
    # actions and states, else hold). See worldmodel/models/world_model.py.
    state_update: str = "auto"
    # Predictors trained (one after another, seeds run.seed + k) on the same latents and readout:
    # > 1 makes the run an ensemble (members 1.. in <run>/member<k>/), whose planner can weigh the
    # members' disagreement (plan.disagreement_weight). Training time grows K-fold.
    ensemble: int = 1

    def validate(self) -> None:
        updates = ("auto", "compose", "add", "hold")  # worldmodel.models.world_model.STATE_UPDATES
        _check(self.state_update in updates, "train.state_update", " | ".join(updates), self.state_update)
        _check(self.clip_len >= 2, "train.clip_len", "an integer >= 2", self.clip_len)
        _check(self.max_minutes >= 0, "train.max_minutes", "a number >= 0 (0 = no cap)", self.max_minutes)
        _check(self.color_jitter >= 0, "train.color_jitter", "a number >= 0", self.color_jitter)
        _check(
            self.color_jitter == 0 or not self.from_cache,
            "train.color_jitter",
            "0 unless train.from_cache=false (cached latents have one fixed appearance)",
            self.color_jitter,
        )
        _check(self.augment_copies >= 0, "train.augment_copies", "an integer >= 0", self.augment_copies)
        _check(
            0 < self.augment_strength <= 1,
            "train.augment_strength",
            "a number in (0, 1]",
            self.augment_strength,
        )
        _check(self.loss_exp in (1.0, 2.0), "train.loss_exp", "1 (L1) or 2 (squared)", self.loss_exp)
        _check(self.batch_size >= 1, "train.batch_size", "an integer >= 1", self.batch_size)
        _check(self.ensemble >= 1, "train.ensemble", "an integer >= 1 (1 = one predictor)", self.ensemble)
        _check(self.max_steps >= 1, "train.max_steps", "an integer >= 1", self.max_steps)
        _check(self.lr > 0, "train.lr", "a number > 0", self.lr)
        _check(
            1 <= self.auto_steps < self.clip_len,
            "train.auto_steps",
            f"an integer in 1..{self.clip_len - 1} (clip_len - 1)",
            self.auto_steps,
        )
        _check(self.checkpoint_every >= 1, "train.checkpoint_every", "an integer >= 1", self.checkpoint_every)

    @property
    def cache_path(self) -> str:
        return self.cache or f"{self.data}.embeddings.h5"


@dataclass
class Config:
    """The whole resolved configuration; `wm config show` prints it."""

    preset: str = DEFAULT_PRESET
    run: RunConfig = field(default_factory=RunConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    collect: CollectConfig = field(default_factory=CollectConfig)
    plan: PlannerConfig = field(default_factory=PlannerConfig)  # planners/config.py
    eval: EvalConfig = field(default_factory=EvalConfig)
    jepa: JEPAConfig = field(default_factory=JEPAConfig)  # encoder, predictor, masks
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    mae: MAESection = field(default_factory=MAESection)  # pretrain.method=mae only
    ac: ACPredictorConfig = field(default_factory=ACPredictorConfig)  # grid_h/grid_w = latent pooling
    train: TrainConfig = field(default_factory=TrainConfig)
    readout: ReadoutConfig = field(default_factory=ReadoutConfig)  # how the planner reads the tokens

    def validate(self) -> None:
        for f in fields(self):
            section = getattr(self, f.name)
            if is_dataclass(section) and hasattr(section, "validate"):
                section.validate()


def preset_path(preset: str) -> Path:
    """A preset is a name in `configs/` or a path to a YAML file."""
    as_path = Path(preset)
    if as_path.suffix in (".yaml", ".yml"):
        if not as_path.is_file():
            raise ConfigError(f"config file '{preset}' does not exist")
        return as_path
    path = CONFIG_DIR / f"{preset}.yaml"
    if not path.is_file():
        names = ", ".join(available_presets()) or "none"
        raise ConfigError(f"unknown preset '{preset}': expected one of {names} or a .yaml path")
    return path


def available_presets() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def load_config(
    overrides: list[str] | None = None,
    preset: str | None = None,
    section: str | tuple[str, ...] | None = None,
) -> Config:
    """Resolve defaults + preset YAML + overrides into a validated `Config`. `section`: the command's
    own section(s), which bare keys belong to first (see `overrides.qualify`)."""
    sections = (section,) if isinstance(section, str) else tuple(section or ())
    preset, overrides = split_preset(list(overrides or []), preset, DEFAULT_PRESET)
    schema = OmegaConf.structured(Config)
    path = preset_path(preset)
    try:
        loaded = OmegaConf.load(path)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(loaded, DictConfig):
        raise ConfigError(f"{path}: expected a mapping of config sections (run:, env:, ...), got a list")
    try:
        merged = OmegaConf.merge(schema, loaded)
    except OmegaConfBaseException as err:
        raise ConfigError(describe_error(err, f"{path}", schema)) from None
    dotlist = [qualify(o, sections, schema) for o in overrides]
    try:
        merged = merge_overrides(merged, dotlist)
        merged.preset = preset
        config: Config = OmegaConf.to_object(merged)  # type: ignore[assignment]
    except OmegaConfBaseException as err:
        raise ConfigError(
            describe_error(err, "command line", schema, sections[0] if sections else None)
        ) from None
    config.validate()
    return config


def to_yaml(config: Config) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(config))


def save_config(config: Config, path: Path) -> None:
    """Write the resolved config next to a run's outputs (temp file + rename)."""
    write_text_atomic(path, to_yaml(config))
