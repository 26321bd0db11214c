"""Bottom layer: error types, atomic writes, threads, rotations, plots; importable by every package."""
