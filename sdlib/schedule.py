"""Noise-schedule maths shared by the sampler and the notebooks.

Two views of the same forward process (eps-prediction, as in SD v1):
  variance preserving (DDPM/DDIM/PNDM):  x_t = sqrt(alpha_bar) * x0 + sqrt(1 - alpha_bar) * eps
  variance exploding (k-diffusion/LMS/Euler):  x_t = x0 + sigma * eps
with sigma = sqrt((1 - alpha_bar) / alpha_bar). Schedulers of the second kind keep latents in the
VE scale and divide by sqrt(sigma^2 + 1) in `scale_model_input` before the UNet sees them.
"""


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
        from .errors import SDLibError
        raise SDLibError(f"unknown scheduler {name!r}; try one of {', '.join(names)}.")
    return cls.from_config(like.config)


