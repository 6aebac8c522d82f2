"""The noise maths of Stable Diffusion, written once: every other module calls these.

Taught in notebooks/02_noise_schedules (the schedule, VP vs VE, img2img) and used by the sampler
(notebooks/00), the UNet tools (04), guidance (05) and training (`sdlib.builtin.train`).

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
import copy

import numpy as np
import torch

from .checks import check_int, check_number
from .errors import SDLibError

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
SCHEDULERS = {"lms": "LMSDiscreteScheduler", "ddim": "DDIMScheduler", "pndm": "PNDMScheduler",
              "euler": "EulerDiscreteScheduler", "euler_a": "EulerAncestralDiscreteScheduler",
              "dpm++": "DPMSolverMultistepScheduler", "ddpm": "DDPMScheduler"}


# ---------------------------------------------------------------- the training schedule
def betas_from_config(config):
    """The training betas from a scheduler config, by the formula (not read from the scheduler).

    "linear": evenly spaced from beta_start to beta_end (DDPM, Ho et al. 2020 sec. 4).
    "scaled_linear" (SD): evenly spaced in sqrt(beta), then squared, which adds noise more gently
    early on. (T,) float32.
    """
    kind, n = config["beta_schedule"], config["num_train_timesteps"]
    lo, hi = config["beta_start"], config["beta_end"]
    if kind == "linear":
        return torch.linspace(lo, hi, n, dtype=torch.float32)
    if kind == "scaled_linear":
        return torch.linspace(lo**0.5, hi**0.5, n, dtype=torch.float32) ** 2
    raise SDLibError(f"beta_schedule {kind!r} is not derived here; use 'linear' or 'scaled_linear'.")


def alpha_bars_from_betas(betas):
    """alpha_bar_t = prod_{s <= t} (1 - beta_s): how much of x0 survives to step t, squared."""
    return torch.cumprod(1.0 - betas, dim=0)


def alpha_bars(scheduler):
    """The scheduler's alpha_bar table, one entry per training timestep: (T,)."""
    return scheduler.alphas_cumprod


def num_train_timesteps(scheduler):
    """T, the number of training timesteps (1000 for SD)."""
    return int(scheduler.config.num_train_timesteps)


def sigmas_from_alpha_bars(alpha_bar):
    """sigma = sqrt((1 - alpha_bar) / alpha_bar): the VE noise level (Karras et al. 2022, table 1)."""
    return ((1 - alpha_bar) / alpha_bar) ** 0.5


def alpha_bar_from_sigma(sigma):
    """The inverse: alpha_bar = 1 / (1 + sigma^2)."""
    return 1.0 / (1.0 + sigma**2)


def is_ve(scheduler):
    """True for k-diffusion style schedulers whose latents live in the VE scale."""
    return float(getattr(scheduler, "init_noise_sigma", 1.0)) > 1.0


def train_sigma(scheduler, t):
    """sigma of (possibly fractional) training timesteps t, interpolated linearly in the table.

    This is how LMS and Euler place their sigmas for N steps; for whole-number timesteps it is
    simply sigmas_from_alpha_bars(alpha_bar[t]). Returns a float32 tensor shaped like t.
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
    """
    alpha_bar = _per_item(alpha_bar, x0)  # (B, 1, 1, 1) or a number
    return alpha_bar**0.5 * x0 + (1 - alpha_bar) ** 0.5 * noise


def add_noise_ve(x0, noise, sigma):
    """VE forward process: x_t = x0 + sigma * noise (what LMS/Euler's add_noise do)."""
    return x0 + _per_item(sigma, x0) * noise


def ve_to_vp(x_t, sigma):
    """x_t / sqrt(sigma^2 + 1): VE latents back to unit scale, what `scale_model_input` does."""
    return x_t / (_per_item(sigma, x_t) ** 2 + 1) ** 0.5


def _per_item(value, like):
    """A number stays a number; a (B,) tensor becomes (B, 1, 1, 1) on like's device and dtype."""
    if isinstance(value, torch.Tensor) and value.ndim == 1:
        return value.to(like.device, like.dtype).view(-1, *[1] * (like.ndim - 1))
    return value


# ---------------------------------------------------------------- from a model output
def prediction_type(scheduler):
    """What the UNet predicts: "epsilon", "v_prediction" or "sample" (else SDLibError)."""
    kind = scheduler.config.get("prediction_type", "epsilon")
    if kind not in PREDICTION_TYPES:
        raise SDLibError(f"prediction_type {kind!r} is not handled; sdlib knows "
                         f"{', '.join(PREDICTION_TYPES)}.")
    return kind


def unit_scale(scheduler, x_t, sigma):
    """Latents as the UNet sees them (VP scale): VE samplers keep them sqrt(sigma^2 + 1) too big."""
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
    """
    alpha_bar = _per_item(alpha_bar, x_t)
    if kind == "epsilon":
        return output
    if kind == "v_prediction":
        return alpha_bar**0.5 * output + (1 - alpha_bar) ** 0.5 * x_t
    return (x_t - alpha_bar**0.5 * output) / (1 - alpha_bar) ** 0.5


def predict_x0(scheduler, x_t, output, t):
    """x0_pred at the sampler's timestep t, for latents in the sampler's own scale (VE latents are
    first brought to the VP scale; x0 is the same in both). See `x0_from_output`."""
    x_vp, alpha_bar = _vp_view(scheduler, x_t, t)
    return x0_from_output(prediction_type(scheduler), x_vp, output, alpha_bar)


def predict_noise(scheduler, x_t, output, t):
    """eps at the sampler's timestep t, for latents in the sampler's own scale. See
    `noise_from_output`."""
    x_vp, alpha_bar = _vp_view(scheduler, x_t, t)
    return noise_from_output(prediction_type(scheduler), x_vp, output, alpha_bar)


def loss_guidance_step(scheduler, x_t, grad, t):
    """Move x_t downhill on a guidance loss: x_t - Var(noise in x_t) * grad.

    grad is d loss / d x_t. In the VE scale the noise in x_t has variance sigma^2, and this is
    the k-diffusion "cond_fn" step x_t - sigma^2 * grad (Crowson's k-diffusion; the fast.ai
    Stable Diffusion deep dive). The same step written in the VP scale (x_VP = sqrt(alpha_bar) x_VE,
    so grad_VP = grad_VE / sqrt(alpha_bar)) is x_t - (1 - alpha_bar) * grad: its noise variance.
    One `loss_scale` therefore moves the picture alike under DDIM and Euler.
    """
    sigma = sampler_sigma(scheduler, t)
    variance = sigma**2 if is_ve(scheduler) else 1 - alpha_bar_from_sigma(sigma)
    return x_t - variance * grad


# ---------------------------------------------------------------- sampling timesteps
def make_scheduler(name, like):
    """A diffusers scheduler by short name ("ddim", "euler", ...) or class name, built from
    `like`'s config (the model's own schedule)."""
    import diffusers

    if not isinstance(name, str):
        raise SDLibError(f"scheduler must be a name like 'ddim' or a diffusers scheduler, got "
                         f"{type(name).__name__}.")
    cls_name = SCHEDULERS.get(name.lower(), name)
    cls = getattr(diffusers, cls_name, None)
    if cls is None or not hasattr(cls, "from_config") or not hasattr(cls, "set_timesteps"):
        raise SDLibError(f"scheduler must be one of {', '.join(map(repr, SCHEDULERS))} or a "
                         f"diffusers scheduler class name, got {name!r}.")
    return cls.from_config(like.config)


def sampler_schedule(scheduler, num_steps):
    """(timesteps, sigmas) a sampler visits for `num_steps`, from a fresh copy of it.

    sigmas[i] is the noise level of the latents fed to the UNet at timesteps[i] (in the VE view),
    the same for every kind of scheduler, so samplers can be compared on one axis.
    """
    sch = copy.deepcopy(scheduler)
    sch.set_timesteps(check_int("num_steps", num_steps, lo=1, hi=num_train_timesteps(scheduler)))
    return sch.timesteps.cpu(), train_sigma(sch, sch.timesteps)


def img2img_skip(num_steps, strength):
    """(steps skipped, steps run) for img2img at `strength`, exactly as diffusers counts them:
    int(num_steps * strength) steps run, the first ones (the noisiest) are skipped."""
    num_steps = check_int("num_steps", num_steps, lo=1)
    strength = check_number("strength", strength, lo=0, hi=1)
    n_run = min(int(num_steps * strength), num_steps)
    return num_steps - n_run, n_run


def img2img_first_step(scheduler, num_steps, strength):
    """(first step index, its timestep t, its sigma) where img2img starts for `strength`.

    strength 1.0 starts at the very first (noisiest) step; smaller strengths skip
    num_steps - int(num_steps * strength) steps and start from a less noisy latent.
    Returns t=None and sigma=0.0 when no step is left to run (strength too small).
    """
    t_start, n_run = img2img_skip(num_steps, strength)
    if n_run == 0:
        return t_start, None, 0.0
    timesteps, sigmas = sampler_schedule(scheduler, num_steps)
    first = t_start * scheduler.order
    return t_start, timesteps[first], float(sigmas[first])
