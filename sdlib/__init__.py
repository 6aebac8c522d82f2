"""sdlib: the small, tested library behind the Stable Diffusion Deep Dive notebooks.

    import sdlib
    sd = sdlib.load_sd()                     # built-in model on CPU, SD v1.4 on a GPU
    image = sdlib.generate(sd, "a red circle on the left", seed=0)

One module per idea the notebooks teach (see the README's module map); the built-in model's
factory (dataset, training, evaluation) is the subpackage `sdlib.builtin`, reached through
`load_sd("builtin")`.
"""
from . import images, latents, plot, schedule, text
from . import animate, embeddings, explore_embeddings, explore_guidance, explore_latents  # noqa: F401
from . import explore_noise, finetune, guidance, inpaint, metrics, speed, step_cache, unet_tools  # noqa: F401
from . import builtin  # noqa: F401  (its submodules load on first use)
from .device import pick_device, pick_dtype
from .errors import PromptTruncatedWarning, SDLibError
from .images import load_image, max_pixel_diff, to_array, to_pil, to_tensor
from .latents import decode, encode
from .plot import plot_bars, plot_curves, save_fig, show_images, show_latents
from .load import SD, SD_V1, load_sd, n_params, ready_line
from .sampler import generate
from .schedule import make_scheduler
from .text import encode_text, tokenize

__version__ = "0.1.0"
