"""The typed `wm` config: one dataclass section per stage, YAML presets, `key=value` overrides."""
