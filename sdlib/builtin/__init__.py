"""The built-in model's factory: how the course's own small Stable Diffusion is made and measured.

This subpackage is a *user* of the course library, not part of what the notebooks teach. The
notebooks reach the model it makes through one door, `sdlib.load_sd("builtin")`, exactly as they
reach `CompVis/stable-diffusion-v1-4`. What lives here:

| module | what it holds |
|---|---|
| `model` | the architecture (configs), the folder layout, where the weights live |
| `tokenizer` | the real CLIP BPE tokenizer of SD v1, rebuilt offline |
| `shapes`, `scenes` | the procedural captioned dataset (coloured shapes on backgrounds) |
| `photos` | crops of the photos that ship offline, for the VAE (one held out) |
| `checker` | a model-free judge: which colour and shape an image shows, where, how big |
| `train` | training: VAE, decoder, UNet + text encoder (`python -m sdlib.builtin.train`) |
| `eval_sets` | the evaluation's prompts (position, size, two objects), each with its ground truth |
| `evaluate` | the model card's figures (`python -m sdlib.builtin.evaluate`) |
| `concept` | the `<purple-triangle>` concept the textual-inversion lesson learns |
"""
from .model import NAME, SHIPPED, build_builtin, builtin_path, cache_dir  # noqa: F401

_SUBMODULES = ("checker", "concept", "eval_sets", "evaluate", "model", "photos", "scenes", "shapes",
               "tokenizer", "train", "twins")


def __getattr__(name):
    """`sdlib.builtin.scenes` etc. import on first use (PEP 562), so `import sdlib` stays light
    and the factory's heavier modules (training, evaluation) load only when asked for."""
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
