"""Noise-schedule maths shared by the sampler and the notebooks.

Two views of the same forward process (eps-prediction, as in SD v1):
  variance preserving (DDPM/DDIM/PNDM):  x_t = sqrt(alpha_bar) * x0 + sqrt(1 - alpha_bar) * eps
  variance exploding (k-diffusion/LMS/Euler):  x_t = x0 + sigma * eps
with sigma = sqrt((1 - alpha_bar) / alpha_bar). Schedulers of the second kind keep latents in the
VE scale and divide by sqrt(sigma^2 + 1) in `scale_model_input` before the UNet sees them.
"""
import copy

import numpy as np
import torch

from .errors import SDLibError


def alpha_bars(scheduler):
    """alpha_bar for every training timestep, (num_train_timesteps,)."""
    return scheduler.alphas_cumprod


def sigmas_from_alpha_bars(alpha_bar):
    """sigma = sqrt((1 - alpha_bar) / alpha_bar): the VE noise level of each timestep."""
    return ((1 - alpha_bar) / alpha_bar) ** 0.5


def is_ve(scheduler):
    """True for k-diffusion style schedulers whose latents live in the VE scale."""
    return float(getattr(scheduler, "init_noise_sigma", 1.0)) > 1.0


def current_sigma(scheduler, t):
    """sigma of the step about to be taken at timestep t (a float)."""
    if is_ve(scheduler):
        i = scheduler.step_index if scheduler.step_index is not None else 0
        return float(scheduler.sigmas[i])
    alpha_bar = scheduler.alphas_cumprod[int(t)]
    return float(sigmas_from_alpha_bars(alpha_bar))


def predict_x0(scheduler, x_t, eps, t):
    """The clean latents implied by eps at the current step, in the VP/x0 scale."""
    sigma = current_sigma(scheduler, t)
    if is_ve(scheduler):
        return x_t - sigma * eps  # x_t = x0 + sigma * eps
    alpha_bar = 1.0 / (1.0 + sigma**2)
    return (x_t - (1 - alpha_bar) ** 0.5 * eps) / alpha_bar**0.5


def img2img_start(num_steps, strength):
    """(first step index, number of steps run) for img2img, exactly as diffusers computes it."""
    init_steps = min(int(num_steps * strength), num_steps)
    t_start = max(num_steps - init_steps, 0)
    return t_start, num_steps - t_start


def make_scheduler(name, like):
    """A diffusers scheduler by short name, from `like`'s config (the model's own schedule)."""
    import diffusers

    names = {"lms": "LMSDiscreteScheduler", "ddim": "DDIMScheduler", "pndm": "PNDMScheduler",
             "euler": "EulerDiscreteScheduler", "euler_a": "EulerAncestralDiscreteScheduler",
             "dpm++": "DPMSolverMultistepScheduler", "ddpm": "DDPMScheduler"}
    cls_name = names.get(name.lower(), name)
    cls = getattr(diffusers, cls_name, None)
    if cls is None or not hasattr(cls, "from_config"):
        raise SDLibError(f"unknown scheduler {name!r}; try one of {', '.join(names)}.")
    return cls.from_config(like.config)


# ---------------------------------------------------------------- the schedule, derived
def betas_from_config(config):
    """The training betas from a scheduler config, by the formula (not read from the scheduler).

    "linear": evenly spaced from beta_start to beta_end (DDPM). "scaled_linear" (SD): evenly
    spaced in sqrt(beta), then squared, which adds noise more gently early on. (T,) float32.
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


def sigma_at(scheduler, t):
    """sigma at (possibly fractional) timesteps t, interpolated linearly in the training table.

    This is how LMS and Euler place their sigmas for N steps; for whole-number timesteps it is
    simply sigmas_from_alpha_bars(alpha_bar[t]). Returns a float32 tensor shaped like t.
    """
    table = sigmas_from_alpha_bars(scheduler.alphas_cumprod).numpy()  # (T,)
    t = torch.as_tensor(t).detach().cpu().double()
    out = np.interp(t.numpy(), np.arange(len(table)), table)
    return torch.from_numpy(np.asarray(out)).float()


def sampler_schedule(scheduler, num_steps):
    """(timesteps, sigmas) a sampler visits for `num_steps`, from a fresh copy of it.

    sigmas[i] is the noise level of the latents fed to the UNet at timesteps[i] (in the VE view),
    the same for every kind of scheduler, so samplers can be compared on one axis.
    """
    sch = copy.deepcopy(scheduler)
    sch.set_timesteps(num_steps)
    return sch.timesteps.cpu(), sigma_at(sch, sch.timesteps)


def add_noise_vp(x0, eps, alpha_bar):
    """Variance-preserving forward process: sqrt(alpha_bar) * x0 + sqrt(1 - alpha_bar) * eps."""
    return alpha_bar**0.5 * x0 + (1 - alpha_bar) ** 0.5 * eps


def add_noise_ve(x0, eps, sigma):
    """Variance-exploding forward process: x0 + sigma * eps (what LMS/Euler's add_noise do)."""
    return x0 + sigma * eps


def ve_to_vp(x_t, sigma):
    """x_t / sqrt(sigma^2 + 1): VE latents back to unit scale, what `scale_model_input` does."""
    return x_t / (sigma**2 + 1) ** 0.5


def img2img_first(scheduler, num_steps, strength):
    """(first step index, its timestep t, its sigma) where img2img starts for `strength`.

    strength 1.0 starts at the very first (noisiest) step; smaller strengths skip
    num_steps - int(num_steps * strength) steps and start from a less noisy latent.
    Returns t=None and sigma=0.0 when no step is left to run (strength too small).
    """
    t_start, n_run = img2img_start(num_steps, strength)
    if n_run == 0:
        return t_start, None, 0.0
    timesteps, sigmas = sampler_schedule(scheduler, num_steps)
    first = t_start * scheduler.order
    return t_start, timesteps[first], float(sigmas[first])
