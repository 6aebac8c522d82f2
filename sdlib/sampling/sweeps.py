"""Sweeps: one picture per value of one `generate` setting, all from the same seed, so the only
thing that changes between pictures is that setting. Taught in notebooks/05_guidance.

    images = sweep(sd, "a red circle", "loss_scale", [0, 3, 10], loss_fn=guidance.blue_loss)
"""
import inspect

from ..errors import SDLibError
from .sampler import generate


def sweep(sd, prompt, name, values, seed=0, **generate_kwargs):
    """One picture per value of one `generate` setting (e.g. "guidance_scale", "loss_scale",
    "negative_prompt", or "seed" itself), all from the same seed: a list of PIL images.
    Taught in notebooks/05, section 4."""
    settings = [p for p in inspect.signature(generate).parameters if p not in ("sd", "prompt")]
    if name not in settings:
        raise SDLibError(f"name must be a setting of sdlib.generate ({', '.join(settings)}), "
                         f"got {name!r}.")
    if name in generate_kwargs:
        raise SDLibError(f"{name!r} is the swept setting; do not also pass it as a fixed one.")
    if not isinstance(values, (list, tuple, range)) or len(values) == 0:
        raise SDLibError(f"values must be a non-empty list of {name} values, got {values!r}.")
    kwargs = dict(generate_kwargs, seed=seed)
    return [generate(sd, prompt, **{**kwargs, name: v}) for v in values]


def cfg_sweep(sd, prompt, scales=(0, 1, 2, 4, 7.5, 12), **generate_kwargs):
    """The same seed at several classifier-free guidance scales (0: uncond only, 1: text only).
    Taught in notebooks/05, section 2."""
    return sweep(sd, prompt, "guidance_scale", scales, **generate_kwargs)
