"""The library's module names from before it was grouped by pipeline stage, kept working so that
notebook cells and code written against them keep their meaning: `sdlib.schedule.predict_x0`,
`from sdlib import finetune`, `import sdlib.builtin.twins` all still work.

A module that moved whole is registered under its old name as itself (one module object, two
names: a change made through either is seen by both). A module that was split (`schedule`,
`guidance`, `embeddings`) is a namespace holding the functions it held, each the very function
of its new home. The README's module map gives the new homes; new code imports those.
"""
import importlib
import sys
import types

MOVED = {  # old name -> new home
    "sdlib.device": "sdlib.models.device", "sdlib.load": "sdlib.models.load",
    "sdlib.latents": "sdlib.models.vae", "sdlib.unet_tools": "sdlib.models.unet",
    "sdlib.text": "sdlib.models.text", "sdlib.sampler": "sdlib.sampling.sampler",
    "sdlib.inpaint": "sdlib.sampling.inpaint", "sdlib.step_cache": "sdlib.sampling.step_cache",
    "sdlib.finetune": "sdlib.training.finetune", "sdlib.plot": "sdlib.display.plot",
    "sdlib.animate": "sdlib.display.animate", "sdlib.explore_embeddings": "sdlib.display.explore_embeddings",
    "sdlib.explore_guidance": "sdlib.display.explore_guidance",
    "sdlib.explore_latents": "sdlib.display.explore_latents", "sdlib.explore_noise": "sdlib.display.explore_noise",
    "sdlib.metrics": "sdlib.measure.metrics", "sdlib.speed": "sdlib.measure.speed",
    "sdlib.builtin.twins": "sdlib.testing.twins", "sdlib.builtin.tokenizer": "sdlib.models.clip_tokenizer",
    "sdlib.builtin.files": "sdlib.models.builtin_files",
}
SPLIT = {  # old name -> (home, names taken from it: "*" for every public one), later homes win
    "sdlib.schedule": (("sdlib.processes.vp", "*"), ("sdlib.sampling.schedulers", "*"),
                       ("sdlib.processes", ("predict_x0", "predict_noise", "sampler_sigma", "train_sigma")),
                       ("sdlib.sampling.guidance", ("loss_guidance_step",))),
    "sdlib.guidance": (("sdlib.sampling.guidance", "*"), ("sdlib.sampling.sweeps", "*")),
    "sdlib.embeddings": (("sdlib.conditioning.embeddings", "*"), ("sdlib.training.textual_inversion", "*"),
                         ("sdlib.sampling.sampler", ("generate_from_embeddings",)),
                         ("sdlib.training.objective", ("denoising_loss", "draw_t_and_noise")),
                         ("sdlib.processes.vp", ("training_target",))),
}


def _public(module):
    """The names a module defines or imports for its users: not private, not modules."""
    return [k for k, v in vars(module).items() if not k.startswith("_") and not isinstance(v, types.ModuleType)]


def _namespace(old, homes):
    ns = types.ModuleType(old, f"Old name of a split module; its functions now live in "
                               f"{', '.join(home for home, _ in homes)}.")
    for home, names in homes:
        module = importlib.import_module(home)
        for name in (_public(module) if names == "*" else names):
            setattr(ns, name, getattr(module, name))
    return ns


def install():
    """Register every old name in sys.modules and as an attribute of its parent package."""
    for old, new in MOVED.items():
        _register(old, importlib.import_module(new))
    for old, homes in SPLIT.items():
        _register(old, _namespace(old, homes))


def _register(old, module):
    sys.modules[old] = module
    parent, _, leaf = old.rpartition(".")
    setattr(sys.modules[parent], leaf, module)
