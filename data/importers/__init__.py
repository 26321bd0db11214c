"""Convert other trajectory formats into the jepa-wm episode store (layout: docs/architecture.md)."""

from data.importers.common import resize_square
from data.importers.lerobot import import_lerobot
from data.importers.robomimic import import_robomimic

__all__ = ["import_lerobot", "import_robomimic", "resize_square"]
