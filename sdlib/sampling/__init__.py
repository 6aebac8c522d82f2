"""Sampling: the one loop every notebook uses (`sampler`), its schedulers and timesteps (`schedulers`),
guidance (`guidance`: classifier-free and loss guidance), one-setting sweeps (`sweeps`), inpainting
(`inpaint`) and step caching (`step_cache`).
"""
