"""sdlib: the small, tested library behind the Stable Diffusion Deep Dive notebooks.

    import sdlib
    sd = sdlib.load_sd()                     # built-in model on CPU, SD v1.4 on a GPU
    image = sdlib.generate(sd, "a red circle on the left", seed=0)

The folders follow the pipeline (the README's module map lists every module):

    models/        the bundle and its parts: loading, the VAE, the text encoder, the UNet's insides
    conditioning/  what steers the denoiser besides the noise: word embeddings, ControlNet
    processes/     the forward processes (DDPM/VP, flow matching): noise, targets, x0
    sampling/      the loop, its schedulers, guidance, inpainting, step caching
    training/      the training objective, textual inversion, DreamBooth-LoRA
    display/       pictures, plots, animations and the interactive explorers
    measure/       metrics and speed
    testing/       twins: real checkpoints' shapes, randomly initialised, for tests without a hub
    builtin/       the factory that makes the built-in model (a user of the library, not part of it)

The module names from before this layout (`sdlib.schedule`, `sdlib.sampler`, ...) still work
(`sdlib._old_names`).
"""
from . import images, processes
from .conditioning import channels, control, embeddings  # noqa: F401
from .display import animate, explore_control, explore_embeddings, explore_flow, explore_guidance, explore_sd3, explore_latents, explore_noise, plot  # noqa: F401
from .measure import metrics, speed  # noqa: F401
from .models import device, flow, load, mmdit, sd3, text, unet, vae  # noqa: F401
from .sampling import guidance, inpaint, sampler, schedulers, step_cache, sweeps  # noqa: F401
from .training import finetune, objective, textual_inversion  # noqa: F401
from . import builtin  # noqa: F401  (its submodules load on first use)
from . import _old_names
from .errors import PromptTruncatedWarning, SDLibError
from .images import load_image, max_pixel_diff, to_array, to_pil, to_tensor
from .models.device import pick_device, pick_dtype
from .models.load import SD, SD_V1, load_sd, n_params, ready_line
from .models.vae import decode, encode
from .display.plot import plot_bars, plot_curves, save_fig, show_images, show_latents
from .sampling.sampler import generate
from .sampling.upscale import upscale
from .conditioning.control import load_controlnet
from .sampling.schedulers import make_scheduler
from .models.text import encode_text, tokenize

_old_names.install()

__version__ = "0.1.0"
