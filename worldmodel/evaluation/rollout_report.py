"""`wm rollout-report`: is the learned predictor better than copying the last frame, per horizon?

Training is teacher-forced and 2-step; planning rolls out H steps with integrated states. This rolls
out the true actions from every start frame of held-out episodes (`rollout_with_states`) and compares
step h with the true latent (mean L1, as loss and planner energy) against predicting z_t throughout:
ratio < 1 beats copying. Held out: `split=heldout` episodes, else the last 20 %. Latents come from the
run's embedding cache when it matches (the same encoding path, float16), else `WorldModel.encode`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import yaml

from data.cache import CacheKey, augment_label, check_cache, read_cache, source_signature
from data.episodes import DatasetError, EpisodeReader
from worldmodel.common.errors import UserError
from worldmodel.models.checkpoints import PREPROCESSING
from worldmodel.models.readout import apply_readout
from worldmodel.models.world_model import WorldModel

HOLDOUT_FRACTION = 0.2
REPORT_FILE = "rollout_report.json"


def run_train_config(run: str | Path) -> dict:
    """The `train` section of a run's resolved config.yaml ({} if absent or unreadable)."""
    path = Path(run) / "config.yaml"
    try:
        return dict((yaml.safe_load(path.read_text()) or {}).get("train") or {})
    except (OSError, yaml.YAMLError, AttributeError):
        return {}


def _same_path(a: str | Path, b: str | Path) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def held_out_episodes(reader: EpisodeReader, run: str | Path | None = None) -> tuple[list[int], str]:
    """Indices of held-out episodes and a one-line description of how they were chosen."""
    heldout = [i for i, attrs in enumerate(reader.attrs) if attrs.get("split") == "heldout"]
    if heldout:
        return heldout, f"{len(heldout)} episodes with split=heldout"
    if not len(reader):
        raise UserError(f"dataset {reader.path}: no episodes")
    count = max(1, math.ceil(HOLDOUT_FRACTION * len(reader)))
    chosen = list(range(len(reader) - count, len(reader)))
    text = f"the last {count} of {len(reader)} episodes (no split=heldout episodes)"
    trained_on = run_train_config(run).get("data") if run is not None else None
    if trained_on and _same_path(trained_on, reader.path):
        text += "; note: the run trained on this dataset, so they were seen in training"
    return chosen, text


def _cache_for(
    wm: WorldModel, run: str | Path, data: str | Path, cache: str | Path | None
) -> tuple[Path, CacheKey]:
    """The cache to try and the key it must match (source string as the run's config wrote it)."""
    train = run_train_config(run)
    source = str(train.get("data") or data)
    if not _same_path(source, data):
        source = str(data)
    if cache is None:
        cache = train.get("cache") or f"{source}.embeddings.h5"
    key = CacheKey(
        encoder_hash=wm.metadata.get("encoder_hash", "unknown"),
        preprocessing=wm.metadata.get("preprocessing", PREPROCESSING),
        latent_pool=int(wm.metadata.get("latent_pool", wm.predictor.cfg.grid_h)),
        source=source,
        source_signature=source_signature(data),
        # The run's colour-augmented copies are in its cache too (entries n.. ; we read 0..n-1).
        augment=augment_label(int(train.get("augment_copies", 0)), float(train.get("augment_strength", 1.0))),
    )
    return Path(cache), key


def episode_latents(
    wm: WorldModel,
    reader: EpisodeReader,
    indices: list[int],
    run: str | Path,
    cache: str | Path | None = None,
) -> tuple[list[torch.Tensor], str]:
    """Latents `[T+1,N,D]` of the chosen episodes, from the embedding cache if it is valid for
    this dataset and world model, else by encoding; plus a description of the source."""
    path, key = _cache_for(wm, run, reader.path, cache)
    reason = f"no cache at {path}"
    if path.exists():
        try:
            check_cache(path, key)
            cached = [z for z, _, _ in read_cache(path, indices)]
            if wm.readout is not None:  # a keypoint run caches whole token grids: read them out
                cached = [apply_readout(wm.readout, z) for z in cached]
            latents = [torch.from_numpy(z) for z in cached]
            if wm.object_term is not None or wm.pixel_state is not None:  # read off the frames, not cached
                frames = [torch.from_numpy(reader.read_frames(i)) for i in indices]
                latents = [wm.join_frame_terms(z, f).cpu() for z, f in zip(latents, frames, strict=True)]
            return latents, f"cache {path}"
        except DatasetError as err:
            reason = str(err)
    latents = [wm.encode(torch.from_numpy(reader.read_frames(i))).cpu() for i in indices]
    return latents, f"encoded with the run's encoder ({reason})"


@dataclass
class HorizonRow:
    horizon: int
    model_l1: float
    copy_l1: float

    @property
    def ratio(self) -> float:
        return self.model_l1 / self.copy_l1 if self.copy_l1 > 0 else float("inf")


@dataclass
class RolloutReport:
    run: str
    data: str
    selection: str
    episodes: list[int]
    latents: str
    state_update: str
    windows: int
    rows: list[HorizonRow] = field(default_factory=list)

    def to_json(self) -> dict:
        out = asdict(self)
        out["rows"] = [{**asdict(r), "ratio": r.ratio} for r in self.rows]
        return out


@torch.no_grad()
def rollout_report(
    wm: WorldModel,
    run: str | Path,
    data: str | Path,
    horizon: int = 5,
    cache: str | Path | None = None,
    batch_size: int = 256,
) -> RolloutReport:
    """Mean rollout L1 at horizons 1..`horizon` vs the copy-last-frame baseline (see the module doc)."""
    if horizon < 1:
        raise UserError(f"option --horizon: expected an integer >= 1, got {horizon}")
    reader = EpisodeReader(data)
    indices, selection = held_out_episodes(reader, run)
    latents, source = episode_latents(wm, reader, indices, run, cache)
    model_sum = torch.zeros(horizon, dtype=torch.float64)
    copy_sum = torch.zeros(horizon, dtype=torch.float64)
    windows = 0
    for index, z in zip(indices, latents, strict=True):
        states = torch.from_numpy(reader.read_states(index)).float()
        actions = torch.from_numpy(reader.read_actions(index)).float()
        if len(actions) < horizon:
            continue
        starts = torch.arange(0, len(actions) - horizon + 1)
        steps = starts[:, None] + torch.arange(horizon)  # [W, H]: action indices
        for chunk in range(0, len(starts), batch_size):
            s, idx = starts[chunk : chunk + batch_size], steps[chunk : chunk + batch_size]
            pred = wm.rollout(z[s].to(wm.device), states[s].to(wm.device), actions[idx].to(wm.device)).cpu()
            target = z[idx + 1]  # [W, H, N, D]
            model_sum += (pred - target).abs().mean((-1, -2)).sum(0).double()
            copy_sum += (z[s][:, None] - target).abs().mean((-1, -2)).sum(0).double()
        windows += len(starts)
    if not windows:
        raise UserError(
            f"dataset {data}: no held-out episode has more than {horizon} steps (lower --horizon)"
        )
    rows = [
        HorizonRow(h + 1, float(model_sum[h] / windows), float(copy_sum[h] / windows)) for h in range(horizon)
    ]
    return RolloutReport(str(run), str(data), selection, indices, source, wm.state_update, windows, rows)


def write_report(report: RolloutReport, run: str | Path) -> Path:
    """`<run>/rollout_report.json`, via a temp file and a rename."""
    path = Path(run) / REPORT_FILE
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    os.replace(tmp, path)
    return path


def report_lines(report: RolloutReport) -> list[str]:
    """The table the CLI prints (plain text, so logs and tests read it the same)."""
    lines = [
        f"held-out: {report.selection}",
        f"latents: {report.latents}",
        f"{report.windows} rollout windows, state update '{report.state_update}'",
        f"{'horizon':>7}  {'model L1':>9}  {'copy L1':>9}  {'model/copy':>10}",
    ]
    lines += [f"{r.horizon:>7}  {r.model_l1:9.4f}  {r.copy_l1:9.4f}  {r.ratio:10.3f}" for r in report.rows]
    return lines
