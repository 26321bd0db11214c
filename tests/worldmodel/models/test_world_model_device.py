"""A world model moved to a device keeps everything there: nothing is created on the CPU per call.

The "meta" device stands in for a GPU on a CPU-only machine: an op that mixes a meta tensor with a
CPU tensor fails, so a stray CPU tensor in encode or rollout shows up here as an error.
"""

from __future__ import annotations

import torch

from worldmodel.models.ac_predictor import ACPredictor, ACPredictorConfig
from worldmodel.models.readout import KeypointReadout
from worldmodel.models.vit import VisionTransformer, ViTConfig
from worldmodel.models.world_model import WorldModel


def small_world_model(readout: bool = False) -> WorldModel:
    torch.manual_seed(0)
    encoder = VisionTransformer(ViTConfig(img_size=32, embed_dim=32, depth=1, num_heads=1, mlp_hidden=64))
    if readout:
        keypoints = KeypointReadout(32, 4, 4, 8)
        predictor = ACPredictor(
            ACPredictorConfig(
                embed_dim=8, width=32, depth=1, num_heads=1, grid_h=1, grid_w=1, layer_norm_latents=False
            )
        )
        return WorldModel(
            encoder, predictor, None, action_low=[-1] * 7, action_high=[1] * 7, readout=keypoints
        )
    predictor = ACPredictor(
        ACPredictorConfig(embed_dim=32, width=32, depth=1, num_heads=1, grid_h=2, grid_w=2)
    )
    return WorldModel(encoder, predictor, 2, action_low=[-1] * 7, action_high=[1] * 7)


def test_encode_and_rollout_stay_on_the_model_device() -> None:
    for readout in (False, True):
        wm = small_world_model(readout).to("meta")
        assert wm.action_low.device.type == "meta" and wm.device.type == "meta"
        z = wm.encode(torch.zeros(3, 32, 32, 3, dtype=torch.uint8, device="meta"))
        states = torch.zeros(3, 7, device="meta")
        actions = torch.zeros(3, 4, 7, device="meta")
        latents, predicted_states = wm.rollout_with_states(z, states, actions)
        assert latents.device.type == predicted_states.device.type == "meta"
        assert latents.shape[:2] == (3, 4) and predicted_states.shape == (3, 4, 7)


def test_the_same_model_on_the_cpu_gives_real_numbers() -> None:
    wm = small_world_model().to("cpu")
    z = wm.encode(torch.zeros(2, 32, 32, 3, dtype=torch.uint8))
    out = wm.rollout(z, torch.zeros(2, 7), torch.zeros(2, 3, 7))
    assert out.device.type == "cpu" and torch.isfinite(out).all()
