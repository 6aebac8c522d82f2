"""The samplers' timesteps: choosing a diffusers scheduler by name, the timesteps and noise levels
it visits for N steps, and where img2img (and inpainting) start for a strength.

Taught in notebooks/02_noise_schedules (sections on samplers and img2img); used by the sampler,
inpainting and the explorers.
"""
import copy

from ..checks import check_int, check_number
from ..errors import SDLibError
from ..processes import num_train_timesteps, train_sigma

SCHEDULERS = {"lms": "LMSDiscreteScheduler", "ddim": "DDIMScheduler", "pndm": "PNDMScheduler",
              "euler": "EulerDiscreteScheduler", "euler_a": "EulerAncestralDiscreteScheduler",
              "dpm++": "DPMSolverMultistepScheduler", "ddpm": "DDPMScheduler",
              "flow_euler": "FlowMatchEulerDiscreteScheduler"}  # the last for flow models (notebooks/10)


def make_scheduler(name, like):
    """A diffusers scheduler by short name ("ddim", "euler", ...) or class name, built from
    `like`'s config (the model's own schedule).
    Taught in notebooks/02, sections 1 to 9 (and used in notebooks/00, section 2)."""
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
    Taught in notebooks/02, section 2.
    """
    sch = copy.deepcopy(scheduler)
    sch.set_timesteps(check_int("num_steps", num_steps, lo=1, hi=num_train_timesteps(scheduler)))
    return sch.timesteps.cpu(), train_sigma(sch, sch.timesteps)


def img2img_skip(num_steps, strength):
    """(steps skipped, steps run) for img2img at `strength`, exactly as diffusers counts them:
    int(num_steps * strength) steps run, the first ones (the noisiest) are skipped.
    Taught in notebooks/02, sections 8 and 9."""
    num_steps = check_int("num_steps", num_steps, lo=1)
    strength = check_number("strength", strength, lo=0, hi=1)
    n_run = min(int(num_steps * strength), num_steps)
    return num_steps - n_run, n_run


def img2img_first_step(scheduler, num_steps, strength):
    """(first step index, its timestep t, its sigma) where img2img starts for `strength`.

    strength 1.0 starts at the very first (noisiest) step; smaller strengths skip
    num_steps - int(num_steps * strength) steps and start from a less noisy latent.
    Returns t=None and sigma=0.0 when no step is left to run (strength too small).
    Taught in notebooks/02, section 9.
    """
    t_start, n_run = img2img_skip(num_steps, strength)
    if n_run == 0:
        return t_start, None, 0.0
    timesteps, sigmas = sampler_schedule(scheduler, num_steps)
    first = first_index(scheduler, t_start)
    return t_start, timesteps[first], float(sigmas[first])


def first_index(scheduler, t_start):
    """Where in `scheduler.timesteps` the step numbered t_start begins: second-order samplers
    (Heun) list each step twice, so it is t_start * order, as the pipelines' `get_timesteps` count.
    Used by img2img's start; img2img is taught in notebooks/02, section 8."""
    return t_start * scheduler.order
