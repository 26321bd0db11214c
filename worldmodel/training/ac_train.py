"""`wm train`: train (or resume) the action-conditioned predictor on the frozen encoder's latents.

The run exports `predictor.safetensors`, whose metadata names the encoder, the pooling grid, the
state integration and the predictor's full config (sizes taken from the data included), so
`WorldModel.from_run` rebuilds the whole world model from one folder. With a keypoint readout the
readout is fitted first (training/readout_fit.py) and the predictor trains on its keypoints. With
`train.ensemble` = K > 1, K - 1 more predictors train after it on the same latents, each with its
own seed, checkpoints and export in `<run>/member<k>/` (resume=true resumes each where it stopped).
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import torch

from data.cache import CacheKey
from worldmodel.common.devices import is_cuda, resolve_device
from worldmodel.config.schema import Config
from worldmodel.models.ac_predictor import ACPredictorConfig
from worldmodel.models.encoders import encoder_path, load_encoder
from worldmodel.models.object_locator import ObjectTerm
from worldmodel.models.predictor_file import PREDICTOR_FILE, PREDICTOR_FORMAT, member_folder
from worldmodel.models.readout import apply_readout
from worldmodel.models.vit import VisionTransformer
from worldmodel.training.ac_data import (
    FrameWindows,
    LatentWindows,
    batch_loader,
    predictor_config,
    readout_predictor_config,
    training_windows,
    with_frame_features,
)
from worldmodel.training.ac_module import ACModule
from worldmodel.training.embedding_cache import cache_key
from worldmodel.training.pixel_state_fit import run_pixel_state
from worldmodel.training.readout_fit import run_readout
from worldmodel.training.runs import RunDir, make_trainer


def predictor_metadata(config: Config, ac: ACPredictorConfig, key: CacheKey) -> dict[str, str]:
    """What `WorldModel.from_run` needs besides the weights."""
    return {
        "format": PREDICTOR_FORMAT,
        "ac_config": json.dumps(asdict(ac)),
        "encoder": str(encoder_path(config.train.encoder).resolve()),
        "encoder_hash": key.encoder_hash,
        "preprocessing": key.preprocessing,
        "latent_pool": str(key.latent_pool),
        "state_update": config.train.state_update,
        "readout": config.readout.kind,
    } | frame_terms_metadata(config)


def frame_terms_metadata(config: Config) -> dict[str, str]:
    """The pixel state and object terms' keys, only when on: runs without them keep the header they had
    (stored benchmark points hash the weights files' headers)."""
    r = config.readout
    keys = {}
    if r.state_weight > 0 and r.state_source == "pixels":
        keys["state_source"] = "pixels"  # <run>/pixel_state.safetensors joins the latent
    if r.object_weight > 0:
        keys |= {"object_weight": str(r.object_weight), "object_temperature": str(r.object_temperature)}
    return keys


def train(config: Config) -> Path:
    """Train (or resume) the AC predictor on the cache (or on frames encoded on the fly); export
    predictor.safetensors. `config` is not modified; the run's config.yaml records `ac` with the
    sizes taken from the data. A run that fails before its first checkpoint leaves no folder behind."""
    t = config.train
    encoder, encoder_meta = load_encoder(t.encoder)  # loaded and hashed once
    key = cache_key(config, encoder_meta, encoder)
    windows, sizes = training_windows(config, encoder, key)
    ac = predictor_config(config, sizes)
    run = RunDir(config, "ac")
    with run.session(replace(config, ac=ac), t.resume) as resume_from:
        if config.readout.kind == "keypoints":
            assert isinstance(windows, LatentWindows)
            readout = run_readout(config, run.path, windows.episodes, key.latent_pool, save=run.owner)
            episodes = [(apply_readout(readout, z), s, a) for z, s, a in windows.episodes]
            r = config.readout
            features, extra = [], 0  # what the frames add: the pixel state estimate, then the object's (x, y)
            if r.state_weight > 0 and r.state_source == "pixels":
                head = run_pixel_state(config, run.path, save=run.owner)
                device = next(head.parameters()).device
                features.append(lambda frames: head.weighted(frames.to(device)))
                extra += head.state_dim
            if r.object_weight > 0:
                features.append(ObjectTerm(r.object_weight, r.object_temperature).positions)
                extra += 2
            if features:
                episodes = with_frame_features(episodes, t.data, features)
            windows = LatentWindows(episodes, t.clip_len)
            ac = readout_predictor_config(ac, readout, extra)
        metadata = predictor_metadata(config, ac, key)
        fit_predictor(run, config, windows, ac, None if t.from_cache else encoder, resume_from, metadata)
        for k in range(1, t.ensemble):
            member_config = replace(config, run=replace(config.run, seed=config.run.seed + k), ac=ac)
            member = RunDir(member_config, "ac", member_folder(run.path, k))
            with member.session(member_config, t.resume) as member_resume:
                fit_predictor(
                    member,
                    member_config,
                    windows,
                    ac,
                    None if t.from_cache else encoder,
                    member_resume,
                    metadata,
                )
    return run.path


def fit_predictor(
    run: RunDir,
    config: Config,
    windows: LatentWindows | FrameWindows,
    ac: ACPredictorConfig,
    encoder: VisionTransformer | None,
    resume_from: Path | None,
    metadata: dict[str, str],
) -> None:
    """Train one predictor (seeded by config.run.seed) into `run` and export its predictor.safetensors.
    `encoder`: None to train on cached latents, else it encodes each batch's frames."""
    t = config.train
    torch.manual_seed(config.run.seed)
    generator = torch.Generator().manual_seed(config.run.seed)
    pinned = is_cuda(resolve_device(config.run.device))  # page-locked: the copy overlaps compute
    loader = batch_loader(windows, t.batch_size, generator, pinned)
    module = ACModule(ac, config, encoder)
    # The predictor keeps the official checkpoint's extrinsics_encoder, unused unless ac.use_extrinsics.
    unused = not ac.use_extrinsics
    trainer = make_trainer(run, config, t.max_steps, t.checkpoint_every, t.log_every, unused, t.max_minutes)
    trainer.fit(module, train_dataloaders=loader, ckpt_path=str(resume_from) if resume_from else None)
    trainer.save_checkpoint(run.last_checkpoint)  # the final state, for resume=true
    run.export(PREDICTOR_FILE, module.predictor.state_dict(), metadata)
