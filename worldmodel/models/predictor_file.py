"""The AC run's predictor file: `predictor.safetensors` (weights + the metadata that rebuilds the
world model), and an ensemble's other members in `member<k>/predictor.safetensors` (`train.ensemble`).
"""

from __future__ import annotations

import json
from pathlib import Path

from worldmodel.common.errors import UserError
from worldmodel.models.ac_predictor import ACPredictor, ACPredictorConfig
from worldmodel.models.checkpoints import load_safetensors

PREDICTOR_FILE = "predictor.safetensors"
PREDICTOR_FORMAT = "jepa-wm.ac-predictor"


def member_folder(run: Path, k: int) -> Path:
    """Where ensemble member k >= 1 of the AC run `run` trains and exports (member 0 is the run)."""
    return run / f"member{k}"


def member_files(run: Path) -> list[Path]:
    """The exported predictors of members 1, 2, ... of the AC run folder `run`, in member order."""
    files = [f for f in run.glob(f"member*/{PREDICTOR_FILE}") if f.parent.name[6:].isdigit()]
    return sorted(files, key=lambda f: int(f.parent.name[6:]))


def load_predictor(path: Path) -> tuple[ACPredictor, dict[str, str]]:
    """An `ACPredictor` and its metadata from a predictor.safetensors (one-line errors)."""
    state, metadata = load_safetensors(path)
    if metadata.get("format") != PREDICTOR_FORMAT:
        raise UserError(f"world model '{path}': metadata 'format' is not '{PREDICTOR_FORMAT}'")
    try:
        saved = json.loads(metadata["ac_config"])
    except (KeyError, json.JSONDecodeError):
        raise UserError(f"world model '{path}': metadata 'ac_config' is missing or not JSON") from None
    known = ACPredictorConfig.__dataclass_fields__
    predictor = ACPredictor(ACPredictorConfig(**{k: v for k, v in saved.items() if k in known}))
    try:
        predictor.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else str(err)
        raise UserError(f"world model '{path}': weights do not fit its ac_config ({first})") from None
    return predictor, metadata
