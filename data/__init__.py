"""Trajectory data: the HDF5 episode store, its checks, collection, clips and the embedding cache.

Imports go one way: errors <- shards <- episodes <- checks, cache, clips, collect, importers.
Only envs (for `collect`) and the standard scientific stack sit below this package.
"""
