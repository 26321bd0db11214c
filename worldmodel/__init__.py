"""jepa-wm world models: common <- models <- config <- training <- evaluation <- cli (docs/architecture.md)."""
