"""Anti-collapse terms: they see collapse, leave healthy features alone, and enter the JEPA loss."""

from __future__ import annotations

import pytest
import torch
from test_jepa import fixed_batch, tiny_cfg

from worldmodel.common.errors import UserError
from worldmodel.models.jepa import JEPA, JEPAConfig
from worldmodel.models.regularizers import anti_collapse, sigreg, variance_covariance


def test_terms_are_small_for_isotropic_gaussians_and_large_for_collapse() -> None:
    g = torch.Generator().manual_seed(0)
    healthy = torch.randn(512, 32, generator=g)
    collapsed = 0.01 * torch.randn(512, 32, generator=g) + 1.0  # one point plus a little noise
    shifted = healthy + 3.0
    assert variance_covariance(healthy) < 0.2 < 0.9 < variance_covariance(collapsed)
    assert sigreg(healthy, generator=g) < 5.0
    assert sigreg(collapsed, generator=g) > 20 * sigreg(healthy, generator=g)
    assert sigreg(shifted, generator=g) > 20 * sigreg(healthy, generator=g)
    assert anti_collapse("none", collapsed) == 0


@pytest.mark.parametrize("kind", ["vc", "sigreg"])
def test_regularizer_enters_the_loss_and_has_gradient(kind: str) -> None:
    torch.manual_seed(0)
    model = JEPA(tiny_cfg(regularizer=kind, regularizer_weight=0.5))
    clips, masks = fixed_batch(model)
    out = model(clips, masks)
    torch.testing.assert_close(out["loss"], out["prediction_loss"] + 0.5 * out["regularizer"])
    out["loss"].backward()
    assert model.encoder.patch_embed.proj.weight.grad.abs().sum() > 0


def test_regularizer_config_is_checked() -> None:
    with pytest.raises(UserError, match="jepa.regularizer"):
        JEPAConfig(regularizer="vicreg2").validate()
    with pytest.raises(UserError, match="jepa.regularizer_weight"):
        JEPAConfig(regularizer_weight=-1.0).validate()
