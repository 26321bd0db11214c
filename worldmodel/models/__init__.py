"""The networks and their files: ViT, JEPA/MAE, AC predictor, readout, checkpoints, `WorldModel`."""
