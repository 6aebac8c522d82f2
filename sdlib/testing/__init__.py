"""Test support: twins (`twins`), real checkpoints' configs, randomly initialised and narrower, in the
hub's folder layout, so the real-SD path is tested with no hub.
"""
