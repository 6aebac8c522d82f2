"""DDPM's variance-preserving process, the one SD v1 and v2 were trained with: the schedule, the
forward process, the training target and x0 from a model output, written once.

Taught in notebooks/02_noise_schedules (the schedule, VP vs VE, img2img) and 07 (the training
target); reached through `sdlib.processes`, which the sampler (notebooks/00), the UNet tools (04),
guidance (05), inpainting (06) and training (`sdlib.training.objective`) call.

Symbols (DDPM, Ho et al. 2020; DDIM, Song et al. 2020; k-diffusion, Karras et al. 2022):
- beta_t: the noise added at training step t; alpha_bar_t = prod_{s <= t} (1 - beta_s)
- x0: clean (scaled) latents; noise: the true Gaussian noise; eps: the model's *predicted* noise
- VP (variance preserving; DDPM/DDIM/PNDM/DPM++ keep latents this way):
      x_t = sqrt(alpha_bar) * x0 + sqrt(1 - alpha_bar) * noise          (DDPM eq. 4)
- VE (variance exploding; LMS/Euler keep latents this way, `init_noise_sigma` > 1):
      x_t = x0 + sigma * noise,  sigma = sqrt((1 - alpha_bar) / alpha_bar)   (Karras et al. 2022, table 1)
  The two are one process seen at two scales: x_VP = x_VE / sqrt(sigma^2 + 1).
- What the UNet predicts (`scheduler.config.prediction_type`): "epsilon" (SD v1, SD 2.x base),
  "v_prediction" (SD 2.x 768 px): v = sqrt(alpha_bar) * noise - sqrt(1 - alpha_bar) * x0
  (Salimans & Ho 2022, "Progressive distillation", sec. 4), or "sample" (x0 itself).
"""
import numpy as np
import torch

from ..errors import SDLibError

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


# ---------------------------------------------------------------- the training schedule
def betas_from_config(config):
    """The training betas from a scheduler config, by the formula (not read from the scheduler).

    "linear": evenly spaced from beta_start to beta_end (DDPM, Ho et al. 2020 sec. 4).
    "scaled_linear" (SD): evenly spaced in sqrt(beta), then squared, which adds noise more gently
    early on. (T,) float32.
    The schedules are taught in notebooks/02, section 1.
    """
    kind, n = config["beta_schedule"], config["num_train_timesteps"]
    lo, hi = config["beta_start"], config["beta_end"]
    if kind == "linear":
        return torch.linspace(lo, hi, n, dtype=torch.float32)
    if kind == "scaled_linear":
        return torch.linspace(lo**0.5, hi**0.5, n, dtype=torch.float32) ** 2
    raise SDLibError(f"beta_schedule {kind!r} is not derived here; use 'linear' or 'scaled_linear'.")


def alpha_bars_from_betas(betas):
    """alpha_bar_t = prod_{s <= t} (1 - beta_s): how much of x0 survives to step t, squared.
    alpha_bar is taught in notebooks/02, section 1."""
    return torch.cumprod(1.0 - betas, dim=0)


def alpha_bars(scheduler):
    """The scheduler's alpha_bar table, one entry per training timestep: (T,). The one place the
    library reads a scheduler's `alphas_cumprod`.
    Taught in notebooks/02, section 1 and notebooks/07, section 2."""
    if not hasattr(scheduler, "alphas_cumprod"):
        raise SDLibError(f"{type(scheduler).__name__} has no alpha_bar table: it is not a VP (DDPM) "
                         "scheduler; sdlib.processes.kind(scheduler) says which process it runs.")
    return scheduler.alphas_cumprod


def num_train_timesteps(scheduler):
    """T, the number of training timesteps (1000 for SD).
    Taught in notebooks/02, section 1 and notebooks/07, section 2."""
    return int(scheduler.config.num_train_timesteps)


def sigmas_from_alpha_bars(alpha_bar):
    """sigma = sqrt((1 - alpha_bar) / alpha_bar): the VE noise level (Karras et al. 2022, table 1).
    Taught in notebooks/02, sections 1 and 4."""
    return ((1 - alpha_bar) / alpha_bar) ** 0.5


def alpha_bar_from_sigma(sigma):
    """The inverse: alpha_bar = 1 / (1 + sigma^2).
    The VE view is taught in notebooks/02, section 4."""
    return 1.0 / (1.0 + sigma**2)


def is_ve(scheduler):
    """True for k-diffusion style schedulers whose latents live in the VE scale.
    Taught in notebooks/02, section 5 (used in notebooks/05, section 4)."""
    return float(getattr(scheduler, "init_noise_sigma", 1.0)) > 1.0


def train_sigma(scheduler, t):
    """sigma of (possibly fractional) training timesteps t, interpolated linearly in the table.

    This is how LMS and Euler place their sigmas for N steps; for whole-number timesteps it is
    simply sigmas_from_alpha_bars(alpha_bar[t]). Returns a float32 tensor shaped like t.
    Used by processes.train_sigma; taught in notebooks/02, section 5.
    """
    table = sigmas_from_alpha_bars(alpha_bars(scheduler)).numpy()  # (T,)
    t = torch.as_tensor(t).detach().cpu().double()
    out = np.interp(t.numpy(), np.arange(len(table)), table)
    return torch.from_numpy(np.asarray(out)).float()


def sampler_sigma(scheduler, t):
    """sigma of the latents a sampler holds at its timestep t (a float), after set_timesteps.

    VE samplers keep their own table (`scheduler.sigmas`, which may differ from the training
    table, e.g. Karras sigmas): t is looked up among its timesteps. VP samplers step on the
    training table. Depends only on t, not on how far the scheduler has stepped.
    Used by processes.sampler_sigma; taught in notebooks/05, section 4.
    """
    if not is_ve(scheduler):
        return float(train_sigma(scheduler, t))
    timesteps = scheduler.timesteps
    hits = (timesteps.to(torch.as_tensor(t).device) == t).nonzero()
    if len(hits) == 0:
        raise SDLibError(f"timestep {float(t):g} is not one of this sampler's timesteps "
                         f"{[round(float(x), 1) for x in timesteps[:4]]}...; call set_timesteps first.")
    return float(scheduler.sigmas[int(hits[0])])


# ---------------------------------------------------------------- the forward process
def add_noise_vp(x0, noise, alpha_bar):
    """VP forward process, DDPM eq. 4: x_t = sqrt(alpha_bar) * x0 + sqrt(1 - alpha_bar) * noise.

    alpha_bar: a number, or a (B,) tensor (one per batch item). Shapes: (B, C, h, w) in and out.
    Taught in notebooks/02, section 4 and notebooks/07, section 2.
    """
    alpha_bar = _per_item(alpha_bar, x0)  # (B, 1, 1, 1) or a number
    return alpha_bar**0.5 * x0 + (1 - alpha_bar) ** 0.5 * noise


def add_noise_ve(x0, noise, sigma):
    """VE forward process: x_t = x0 + sigma * noise (what LMS/Euler's add_noise do).
    Taught in notebooks/02, section 4."""
    return x0 + _per_item(sigma, x0) * noise


def ve_to_vp(x_t, sigma):
    """x_t / sqrt(sigma^2 + 1): VE latents back to unit scale, what `scale_model_input` does.
    Taught in notebooks/02, section 5."""
    return x_t / (_per_item(sigma, x_t) ** 2 + 1) ** 0.5


def _per_item(value, like):
    """A number stays a number; a (B,) tensor becomes (B, 1, 1, 1) on like's device and dtype."""
    if isinstance(value, torch.Tensor) and value.ndim == 1:
        return value.to(like.device, like.dtype).view(-1, *[1] * (like.ndim - 1))
    return value


# ---------------------------------------------------------------- from a model output
def prediction_type(scheduler):
    """What the UNet predicts: "epsilon", "v_prediction" or "sample" (else SDLibError).
    Taught in notebooks/04, section 3 and notebooks/07, section 2."""
    kind = scheduler.config.get("prediction_type", "epsilon")
    if kind not in PREDICTION_TYPES:
        raise SDLibError(f"prediction_type {kind!r} is not handled; sdlib knows "
                         f"{', '.join(PREDICTION_TYPES)}.")
    return kind


def unit_scale(scheduler, x_t, sigma):
    """Latents as the UNet sees them (VP scale): VE samplers keep them sqrt(sigma^2 + 1) too big.
    Used by predict_x0 and predict_noise; the two scales are taught in notebooks/02, section 5."""
    return ve_to_vp(x_t, sigma) if is_ve(scheduler) else x_t


def _vp_view(scheduler, x_t, t):
    """(x_t in the VP scale, alpha_bar) at the sampler's timestep t."""
    sigma = sampler_sigma(scheduler, t)
    return unit_scale(scheduler, x_t, sigma), alpha_bar_from_sigma(sigma)


def x0_from_output(kind, x_t, output, alpha_bar):
    """x0_pred from the UNet's `output` on VP latents x_t with noise level alpha_bar.

    Solve x_t = sqrt(alpha_bar) x0 + sqrt(1 - alpha_bar) noise for x0 (DDIM eq. 12,
    "predicted x0"), reading the output by its kind (`prediction_type`):
      epsilon:       x0 = (x_t - sqrt(1 - alpha_bar) eps) / sqrt(alpha_bar)
      v_prediction:  x0 = sqrt(alpha_bar) x_t - sqrt(1 - alpha_bar) v
      sample:        x0 = output
    alpha_bar: a number or a (B,) tensor. Shapes (B, 4, h, w).
    Taught in notebooks/04, section 3.
    """
    alpha_bar = _per_item(alpha_bar, x_t)
    if kind == "epsilon":
        return (x_t - (1 - alpha_bar) ** 0.5 * output) / alpha_bar**0.5
    if kind == "v_prediction":
        return alpha_bar**0.5 * x_t - (1 - alpha_bar) ** 0.5 * output
    return output


def noise_from_output(kind, x_t, output, alpha_bar):
    """eps, the noise implied by the UNet's `output` on VP latents x_t (same line, solved for noise):
      epsilon:       eps = output
      v_prediction:  eps = sqrt(alpha_bar) v + sqrt(1 - alpha_bar) x_t
      sample:        eps = (x_t - sqrt(alpha_bar) x0) / sqrt(1 - alpha_bar)
    Taught in notebooks/04, section 3.
    """
    alpha_bar = _per_item(alpha_bar, x_t)
    if kind == "epsilon":
        return output
    if kind == "v_prediction":
        return alpha_bar**0.5 * output + (1 - alpha_bar) ** 0.5 * x_t
    return (x_t - alpha_bar**0.5 * output) / (1 - alpha_bar) ** 0.5


def predict_x0(scheduler, x_t, output, t):
    """x0_pred at the sampler's timestep t, for latents in the sampler's own scale (VE latents are
    first brought to the VP scale; x0 is the same in both). See `x0_from_output`.
    Used by processes.predict_x0; taught in notebooks/05, section 4."""
    x_vp, alpha_bar = _vp_view(scheduler, x_t, t)
    return x0_from_output(prediction_type(scheduler), x_vp, output, alpha_bar)


def predict_noise(scheduler, x_t, output, t):
    """eps at the sampler's timestep t, for latents in the sampler's own scale. See
    `noise_from_output`.
    Used by processes.predict_noise; eps from an output is taught in notebooks/04, section 3."""
    x_vp, alpha_bar = _vp_view(scheduler, x_t, t)
    return noise_from_output(prediction_type(scheduler), x_vp, output, alpha_bar)


def noise_variance(scheduler, t):
    """Var of the noise in the sampler's latents at its timestep t: sigma^2 in the VE scale
    (x_t = x0 + sigma noise), 1 - alpha_bar in the VP scale (x_t = sqrt(alpha_bar) x0 +
    sqrt(1 - alpha_bar) noise). The loss-guidance step (`sdlib.sampling.guidance`) scales by it.
    Used by the loss-guidance step; taught in notebooks/05, section 4."""
    sigma = sampler_sigma(scheduler, t)
    return sigma**2 if is_ve(scheduler) else 1 - alpha_bar_from_sigma(sigma)


# ---------------------------------------------------------------- the training target
def training_target(kind, x0, noise, alpha_bar):
    """What the UNet is trained to output for x_t = sqrt(alpha_bar) x0 + sqrt(1 - alpha_bar) noise,
    by `prediction_type` (the same targets as diffusers' training scripts):
      epsilon:       noise                                  (DDPM, Ho et al. 2020, eq. 14)
      v_prediction:  v = sqrt(alpha_bar) noise - sqrt(1 - alpha_bar) x0
                     (Salimans & Ho 2022, sec. 4; diffusers' `scheduler.get_velocity`)
      sample:        x0
    alpha_bar: a number or a (B,) tensor. Shapes (B, 4, h, w). Taught in notebooks/07.
    """
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        alpha_bar = torch.as_tensor(alpha_bar).to(x0).reshape(-1, 1, 1, 1)  # (B or 1, 1, 1, 1)
        return alpha_bar**0.5 * noise - (1 - alpha_bar) ** 0.5 * x0
    return x0
