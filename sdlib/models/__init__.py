"""The model bundle and its parts: loading (`load`: `load_sd`, the bundle `SD`, hub ids that moved),
the VAE (`vae`: pixels <-> latents), the UNet's insides (`unet`: blocks, one prediction, cross-attention
maps), devices and dtypes (`device`), the CLIP tokenizer rebuilt offline (`clip_tokenizer`) and where the
built-in model's files are (`builtin_files`; the files themselves are in `builtin/`).
"""
