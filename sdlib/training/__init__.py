"""Training: Stable Diffusion's objective, written once (`objective`), and the fine-tunes that
minimise it (`finetune`: textual inversion, DreamBooth-LoRA). Taught in notebooks/07.
"""
