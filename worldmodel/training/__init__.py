"""Stages 1 and 2 as Lightning runs: pretraining, the embedding cache, AC training, readout fitting."""
