"""The YAML presets (`preset=tiny`, `preset=small`), installed as the package `worldmodel.presets`."""
