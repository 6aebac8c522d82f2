"""Conditioning the denoiser on text: tokens and the text encoder (`text`), and editing, mixing,
adding and learning word embeddings (`embeddings`). Taught in notebooks/03.
"""
