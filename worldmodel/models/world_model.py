"""`WorldModel`: the frozen encoder + AC predictor behind the planners' `WorldModel` protocol.

Planners (`planners/base.py`) see only `encode`, `rollout`, `rollout_with_states`, `action_dim` and
`state_dim` (and, for an ensemble, `rollout_members`). `from_run` rebuilds the whole model from one
AC run folder (predictor, the encoder it names, pooling grid, state integration, keypoint readout,
the ensemble's other members), so planning sees exactly what the run trained on; `make_encode_fn`
gives any latent space by name, for probes and latent-energy rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from worldmodel.common.errors import ConfigError, UserError
from worldmodel.common.rotations import compose_euler
from worldmodel.models.ac_predictor import ACCache, ACPredictor
from worldmodel.models.encoders import EncodeFn, encode_frames, load_encoder, pixel_encode_fn, vit_encode_fn
from worldmodel.models.object_locator import ObjectTerm, join_object
from worldmodel.models.pixel_state import PixelStateHead, frame_terms
from worldmodel.models.predictor_file import PREDICTOR_FILE, load_predictor, member_files
from worldmodel.models.readout import READOUT_FILE, KeypointReadout, load_readout
from worldmodel.models.vit import VisionTransformer, ViTConfig

STATE_UPDATES = ("auto", "compose", "add", "hold")
ROTATION = slice(3, 6)  # euler-xyz dims of the default 7-D action and state


class WorldModel:
    """Frozen `VisionTransformer` + `ACPredictor`; implements `planners.base.WorldModel`.

    `latent_pool`: side of the pooled token grid (None/0: the encoder grid); it must equal the
    predictor's grid_h/grid_w. `freeze=True` (default) sets `requires_grad_(False)` on BOTH modules
    (a side effect on the modules passed in), so gradient planning computes no weight gradients;
    pass `freeze=False` when the predictor is still being trained elsewhere. `state_update` (config
    key `train.state_update`, stored in the run): compose | add | hold (`next_state`), or auto =
    compose for 7-D actions and states, else hold. `members`: further predictors of the same config
    (an ensemble, `train.ensemble`): `rollout` is then the members' mean, `rollout_members` each one.
    """

    def __init__(
        self,
        encoder: VisionTransformer,
        predictor: ACPredictor,
        latent_pool: int | None = None,
        *,
        action_low: Sequence[float] | Tensor | None = None,
        action_high: Sequence[float] | Tensor | None = None,
        state_update: str = "auto",
        gripper_index: int | None = -1,
        normalize_predictions: bool | None = None,
        encode_batch_size: int = 256,
        freeze: bool = True,
        readout: KeypointReadout | None = None,
        object_term: ObjectTerm | None = None,
        pixel_state: PixelStateHead | None = None,
        members: Sequence[ACPredictor] = (),
    ) -> None:
        pcfg = predictor.cfg
        for k, member in enumerate(members, 1):
            if member.cfg != pcfg:
                raise ConfigError(
                    f"world model: ensemble member {k} has another predictor config than member 0"
                )
        grid = encoder.cfg.img_size // encoder.cfg.patch_size
        if (object_term is not None or pixel_state is not None) and readout is None:
            key = "object_weight" if object_term is not None else "state_source"
            raise ConfigError(f"config key 'readout.{key}': expected readout.kind=keypoints")
        pixel_dims = 0 if pixel_state is None else pixel_state.state_dim
        if readout is not None:
            width = readout.latent_dim + pixel_dims + (2 if object_term is not None else 0)
            if (pcfg.embed_dim, pcfg.grid_h, pcfg.grid_w) != (width, 1, 1):
                raise ConfigError(
                    f"config key 'ac.embed_dim': expected one {width}-D keypoint token per frame "
                    f"(readout.keypoints={readout.keypoints}"
                    f"{f', + {readout.state_dim} state dims' if readout.state_dim else ''}"
                    f"{f', + {pixel_dims} pixel state dims' if pixel_dims else ''}"
                    f"{', + the object (x, y)' if object_term else ''}), "
                    f"got {pcfg.grid_h}x{pcfg.grid_w} of {pcfg.embed_dim}"
                )
            if readout.embed_dim != encoder.embed_dim:
                raise ConfigError(
                    f"readout: built for {readout.embed_dim}-wide tokens, the encoder is {encoder.embed_dim} wide"
                )
            latent_pool = None
        elif encoder.embed_dim != pcfg.embed_dim:
            raise ConfigError(
                f"config key 'ac.embed_dim': expected the encoder width {encoder.embed_dim}, got {pcfg.embed_dim}"
            )
        if latent_pool is not None and not (isinstance(latent_pool, int) and 0 <= latent_pool <= grid):
            raise ConfigError(
                f"config key 'ac.latent_pool': expected 0 (no pooling) or a grid side <= {grid}, got {latent_pool!r}"
            )
        out = latent_pool or grid
        if readout is None and (pcfg.grid_h, pcfg.grid_w) != (out, out):
            raise ConfigError(
                f"config key 'ac.grid_h': expected the pooled grid {out}x{out} "
                f"(encoder {grid}x{grid}, latent_pool={latent_pool}), got {pcfg.grid_h}x{pcfg.grid_w}"
            )
        if state_update not in STATE_UPDATES:
            raise ConfigError(
                f"config key 'train.state_update': expected {' | '.join(STATE_UPDATES)}, got {state_update!r}"
            )
        self.encoder = encoder.eval()
        self.predictor = predictor
        self.predictors = [predictor, *members]  # member 0 is `predictor`
        self.readout = None if readout is None else readout.eval()
        self.object_term = object_term
        self.pixel_state = pixel_state  # fitted and loaded frozen (pixel_state_fit.py, pixel_state.py)
        self.latent_pool = None if not latent_pool or latent_pool == grid else latent_pool
        self.action_dim = pcfg.action_dim
        self.state_dim = pcfg.state_dim
        if state_update == "auto":
            state_update = "compose" if self.action_dim == self.state_dim == 7 else "hold"
        if state_update == "add" and self.action_dim != self.state_dim:
            raise ConfigError(
                f"config key 'train.state_update': 'add' needs action_dim == state_dim, "
                f"got {self.action_dim} and {self.state_dim}"
            )
        if state_update == "compose" and not self.action_dim == self.state_dim == 7:
            raise ConfigError(
                "config key 'train.state_update': 'compose' needs 7-D [xyz, euler-xyz, gripper] "
                f"actions and states, got {self.action_dim} and {self.state_dim}"
            )
        self.state_update = state_update
        self.gripper_index = gripper_index
        if normalize_predictions is None:
            normalize_predictions = pcfg.layer_norm_latents
        self.normalize_predictions = normalize_predictions
        self.metadata: dict[str, str] = {}  # predictor.safetensors metadata when built by from_run
        self.encode_batch_size = encode_batch_size
        self.action_low = None if action_low is None else torch.as_tensor(action_low, dtype=torch.float32)
        self.action_high = None if action_high is None else torch.as_tensor(action_high, dtype=torch.float32)
        for name, bound in (("action_low", self.action_low), ("action_high", self.action_high)):
            if bound is not None and bound.shape != (self.action_dim,):
                raise ConfigError(
                    f"config key 'ac.{name}': expected {self.action_dim} values, got {list(bound.shape)}"
                )
        for module in (self.encoder, *self.predictors) if freeze else (self.encoder,):
            module.requires_grad_(False)
        if self.readout is not None:
            self.readout.requires_grad_(False)

    @classmethod
    def from_modules(
        cls, encoder: VisionTransformer, predictor: ACPredictor, latent_pool: int | None = None, **kwargs
    ) -> WorldModel:
        return cls(encoder, predictor, latent_pool, **kwargs)

    @classmethod
    def from_run(
        cls,
        run: str | Path,
        *,
        action_low: Sequence[float] | Tensor | None = None,
        action_high: Sequence[float] | Tensor | None = None,
        state_update: str | None = None,
        **kwargs: object,
    ) -> WorldModel:
        """Encoder + predictor + preprocessing from an AC run folder (or its predictor.safetensors).

        The one loader every caller uses, so planning sees exactly the pooling grid and state
        integration the run was trained with; `state_update` overrides the run's setting.
        """
        path = Path(run)
        if not path.exists():
            raise UserError(f"world model '{run}': no such AC run folder (train one with `wm train`)")
        if path.is_dir():
            path = path / PREDICTOR_FILE
        if not path.is_file():
            raise UserError(
                f"world model '{run}': no {PREDICTOR_FILE} (run `wm train` first, or let it finish)"
            )
        predictor, metadata = load_predictor(path)
        members = []
        for file in member_files(path.parent):
            member, member_meta = load_predictor(file)
            if member_meta.get("encoder_hash") != metadata.get("encoder_hash"):
                raise UserError(f"world model '{file}': this ensemble member was trained on another encoder")
            members.append(member.eval())
        try:
            encoder, encoder_meta = load_encoder(metadata.get("encoder", ""))
        except UserError as err:
            raise UserError(f"world model '{run}': {err}") from None
        if encoder_meta.get("weights_hash") != metadata.get("encoder_hash"):
            raise UserError(
                f"world model '{path}': encoder {metadata.get('encoder')} changed since the predictor was trained"
            )
        pool = int(metadata.get("latent_pool", predictor.cfg.grid_h))
        readout = None
        if metadata.get("readout", "pool") == "keypoints":
            readout_file = path.parent / READOUT_FILE
            if not readout_file.is_file():
                raise UserError(
                    f"world model '{run}': its {READOUT_FILE} is missing (train it again with `wm train`)"
                )
            readout = load_readout(readout_file)
        pixel_state, object_term = frame_terms(path.parent, metadata, str(run))
        model = cls(
            encoder,
            predictor.eval(),
            pool,
            action_low=action_low,
            action_high=action_high,
            state_update=state_update or metadata.get("state_update", "auto"),
            readout=readout,
            object_term=object_term,
            pixel_state=pixel_state,
            members=members,
            **kwargs,  # type: ignore[arg-type]
        )
        model.metadata = dict(metadata)
        return model

    # -- housekeeping

    @property
    def ensemble_size(self) -> int:
        return len(self.predictors)

    @property
    def device(self) -> torch.device:
        return next(self.predictor.parameters()).device

    def to(self, device: torch.device | str) -> WorldModel:
        """Every network and the action bounds on `device` (nothing is copied there per rollout)."""
        for module in (self.encoder, *self.predictors, self.readout, self.pixel_state):
            if module is not None:
                module.to(device)
        if self.action_low is not None:
            self.action_low = self.action_low.to(device)
        if self.action_high is not None:
            self.action_high = self.action_high.to(device)
        return self

    def eval(self) -> WorldModel:
        for module in (self.encoder, *self.predictors, self.readout, self.pixel_state):
            if module is not None:
                module.eval()
        return self

    @property
    def tokens_per_frame(self) -> int:
        return self.predictor.cfg.frame_tokens

    # -- encoding

    @torch.no_grad()
    def encode(self, images: Tensor) -> Tensor:
        """uint8 `[B,H,W,3]` -> layer-normed latents `[B,N,D]` (N = predictor grid tokens) through
        `encode_frames`, the embedding cache's path; with a keypoint readout, the unpooled token grid
        read out to one token of 2K coordinates per image, `[B,1,2K]` (not layer-normed), plus the
        weighted state estimate of a readout with a state head or of its pixel state head (S dims)
        and the object's weighted (x, y) for a run trained with an object term, `[B,1,2K+S+2]`."""
        if images.dim() != 4 or images.shape[-1] != 3:
            raise UserError(f"WorldModel.encode: expected uint8 images [B,H,W,3], got {list(images.shape)}")
        if images.dtype != torch.uint8:
            raise UserError(f"WorldModel.encode: expected uint8 images, got {images.dtype}")
        p = self.encoder.cfg.patch_size
        h, w = images.shape[1:3]
        if h != w or h % p:
            raise UserError(f"WorldModel.encode: images must be square multiples of patch {p}, got {h}x{w}")
        grid = h // p
        if self.readout is not None and grid != self.readout.grid:
            raise UserError(
                f"WorldModel.encode: {h}x{w} images give a {grid}x{grid} token grid, the keypoint readout "
                f"expects {self.readout.grid}x{self.readout.grid}"
            )
        if self.readout is None and self.latent_pool is None and grid != self.predictor.cfg.grid_h:
            raise UserError(
                f"WorldModel.encode: {h}x{w} images give a {grid}x{grid} token grid, the predictor "
                f"expects {self.predictor.cfg.grid_h}x{self.predictor.cfg.grid_w}"
            )
        latents = encode_frames(self.encoder, images, self.latent_pool, self.encode_batch_size)
        if self.readout is None:
            return latents
        width = self.predictor.cfg.embed_dim
        if not len(latents):
            return latents.new_zeros(0, 1, width)
        keypoints = torch.cat([self.readout(part) for part in latents.split(max(self.encode_batch_size, 1))])
        return self.join_frame_terms(keypoints, images)

    @torch.no_grad()
    def join_frame_terms(self, keypoints: Tensor, images: Tensor) -> Tensor:
        """Keypoint latents `[B, 1, L]` of uint8 `images` with what the run reads off the frames
        themselves joined: the pixel state estimate, then the object's (x, y)."""
        images = images.to(keypoints.device)
        if self.pixel_state is not None:
            parts = images.split(max(self.encode_batch_size, 1))
            keypoints = join_object(keypoints, torch.cat([self.pixel_state.weighted(p) for p in parts]))
        if self.object_term is not None:
            keypoints = self.object_term(keypoints, images)
        return keypoints

    # -- dynamics

    def _post(self, pred: Tensor) -> Tensor:
        return F.layer_norm(pred, (pred.shape[-1],)) if self.normalize_predictions else pred

    def next_state(self, state: Tensor, action: Tensor) -> Tensor:
        """State after executing `action` from `state`; differentiable. Actions are clipped to the
        bounds (if given), the new gripper dim to [0, 1]. `compose` (7-D `[xyz, euler-xyz, gripper]`):
        xyz and gripper add, the rotation composes as the arm env applies it, `R(action) @ R(state)`
        with extrinsic xyz Euler angles; `add`: every dim adds (first order for rotations); `hold`:
        the state stays. Neither the env's workspace clipping nor the hand's lag is modelled."""
        if self.state_update == "hold":
            return state
        if self.action_low is not None or self.action_high is not None:
            low = None if self.action_low is None else self.action_low.to(action)
            high = None if self.action_high is None else self.action_high.to(action)
            action = torch.clamp(action, low, high)
        new = state + action
        if self.state_update == "compose":
            rotation = compose_euler(state[..., ROTATION], action[..., ROTATION])
            new = torch.cat([new[..., : ROTATION.start], rotation, new[..., ROTATION.stop :]], dim=-1)
        if self.gripper_index is not None:
            g = self.gripper_index % self.state_dim
            new = torch.cat([new[..., :g], new[..., g : g + 1].clamp(0.0, 1.0), new[..., g + 1 :]], dim=-1)
        return new

    def predict(
        self, z: Tensor, actions: Tensor, states: Tensor, cache: list[ACCache] | None = None
    ) -> tuple[Tensor, list[ACCache]]:
        """Next-frame latents `[B,N,D]` (an ensemble's mean) from steps `z [B,T,N,D]`, `actions [B,T,A]`,
        `states [B,T,S]`.

        Without a cache, z is the whole history; with one (returned by an earlier call: one per
        member), z, actions and states hold only the NEW steps after the cached ones.
        """
        preds, caches = [], []
        for predictor, past in zip(self.predictors, cache or [None] * self.ensemble_size, strict=True):
            pred, new = predictor.run(z, actions, states, cache=past, return_cache=True)
            assert new is not None
            preds.append(self._post(pred[:, -1]))
            caches.append(new)
        return torch.stack(preds).mean(0), caches

    def rollout_with_states(
        self,
        z0: Tensor,
        state0: Tensor,
        actions: Tensor,
        *,
        past_actions: Tensor | None = None,
        past_states: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """z0 `[B,N,D]` (or history `[B,T,N,D]`), state0 `[B,S]`, actions `[B,H,A]` ->
        (predicted latents `[B,H,N,D]`, states after each action `[B,H,S]`); an ensemble's mean latents.

        Autoregressive and KV-cached (one predictor step per horizon step); each prediction is
        layer-normed (unless keypoint latents) and fed back, as the official planning wrapper does.
        Differentiable w.r.t. actions. A history needs the actions/states of its first T-1 frames
        (`past_actions [B,T-1,A]`, `past_states [B,T-1,S]`); without them zero actions and `state0`
        are assumed.
        """
        preds, states = self._member_rollouts(z0, state0, actions, past_actions, past_states)
        return (preds[0] if len(preds) == 1 else torch.stack(preds).mean(0)), states

    def rollout_members(self, z0: Tensor, state0: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        """Each member's own rollout: (latents `[K,B,H,N,D]`, states `[B,H,S]`); K = ensemble_size.
        Every member feeds back its own predictions; the states are kinematic, the same for all. A
        history z0 `[B,T,N,D]` is taken with zero past actions and `state0`, as in `rollout`."""
        preds, states = self._member_rollouts(z0, state0, actions, None, None)
        return torch.stack(preds), states

    def _member_rollouts(
        self,
        z0: Tensor,
        state0: Tensor,
        actions: Tensor,
        past_actions: Tensor | None,
        past_states: Tensor | None,
    ) -> tuple[list[Tensor], Tensor]:
        if z0.dim() == 3:
            z0 = z0.unsqueeze(1)
        if z0.dim() != 4 or actions.dim() != 3 or state0.dim() != 2:
            raise UserError(
                f"WorldModel.rollout: expected z0 [B,N,D] or [B,T,N,D], state0 [B,S], actions [B,H,A], got "
                f"{list(z0.shape)}, {list(state0.shape)}, {list(actions.shape)}"
            )
        b, t = z0.shape[:2]
        if t > 1:
            if past_actions is None:
                past_actions = actions.new_zeros(b, t - 1, self.action_dim)
            if past_states is None:
                past_states = state0.unsqueeze(1).expand(b, t - 1, self.state_dim)
        state, states = state0, []
        for h in range(actions.shape[1]):
            state = self.next_state(state, actions[:, h])
            states.append(state)
        if not states:
            n, d = z0.shape[2:]
            return [z0.new_zeros(b, 0, n, d)] * self.ensemble_size, state0.new_zeros(b, 0, self.state_dim)
        inputs = torch.stack([state0, *states[:-1]], dim=1)  # the state each action starts from
        preds = [self._roll(p, z0, inputs, actions, past_actions, past_states) for p in self.predictors]
        return preds, torch.stack(states, dim=1)

    def _roll(
        self,
        predictor: ACPredictor,
        z0: Tensor,
        states: Tensor,
        actions: Tensor,
        past_actions: Tensor | None,
        past_states: Tensor | None,
    ) -> Tensor:
        """One member's KV-cached rollout from history z0 `[B,T,N,D]`: `[B,H,N,D]`."""
        cache = None
        if z0.shape[1] > 1:
            _, cache = predictor.prefill(z0[:, :-1], past_actions, past_states)
        z, preds = z0[:, -1], []
        for h in range(actions.shape[1]):
            pred, cache = predictor.step(z, actions[:, h], states[:, h], cache)
            z = self._post(pred)
            preds.append(z)
        return torch.stack(preds, dim=1)

    def rollout(self, z0: Tensor, state0: Tensor, actions: Tensor) -> Tensor:
        """z0 `[B,N,D]` or `[B,T,N,D]`, state0 `[B,S]`, actions `[B,H,A]` -> `[B,H,N,D]`; KV-cached."""
        return self.rollout_with_states(z0, state0, actions)[0]


def is_ac_run(name: str | Path) -> bool:
    """Whether `name` is an AC run folder (runs/ac/<name>), whose latent is its planner's own."""
    return (Path(name) / PREDICTOR_FILE).is_file()


def make_encode_fn(
    name: str, grid: int, image_size: int = 64, seed: int = 0, device: torch.device | str = "cpu"
) -> EncodeFn:
    """`pixels`, `random` (a random-init tiny ViT), a pretrain run folder / encoder file, or an AC
    run folder (runs/ac/<name>): exactly the latent its planner uses (its pooling or keypoint
    readout; `grid` is then ignored). The model runs on `device`; latents come back there."""
    if name == "pixels":
        pixels = pixel_encode_fn(grid)
        return lambda images: pixels(images.to(device))
    if name == "random":
        torch.manual_seed(seed)
        return vit_encode_fn(VisionTransformer(ViTConfig(img_size=image_size)).eval().to(device), grid)
    if is_ac_run(name):
        return WorldModel.from_run(name).to(device).encode
    encoder, _ = load_encoder(name)
    return vit_encode_fn(encoder.to(device), grid)
