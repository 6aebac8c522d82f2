"""The forward processes, behind one interface: how noise is added, what a model is trained to
output, and how x0 (and the noise) are read back from its output, for every kind of model.

The sampler, img2img, inpainting, loss guidance and the training objective call these functions
with the model's scheduler and nothing else reads a scheduler's tables; each function asks
`kind(scheduler)` which process the model was trained with and uses that process's formulas:

- "vp" (`sdlib.processes.vp`): DDPM's variance-preserving process, SD v1 and v2, with the model
  predicting the noise (eps), v, or x0 (`scheduler.config.prediction_type`); the VE view of the
  same process is how LMS and Euler hold their latents.
- "flow" (`sdlib.processes.flow`): flow matching / rectified flow, SD3 and Flux: a straight line
  from x0 to the noise and a model that predicts the velocity (notebooks/10).

    kind(scheduler)                               "vp" or "flow"
    add_noise(scheduler, x0, noise, t)            x_t at the model's training timesteps t (B,)
    training_target(scheduler, x0, noise, t)      what the model learns to output there
    draw_timesteps(scheduler, n, generator)       a training batch's t, as the model was trained
    predict_x0(scheduler, x_t, output, t)         x0 from an output at a sampler's timestep t
    predict_noise(scheduler, x_t, output, t)      the noise it implies
    sampler_sigma(scheduler, t)                   the noise level of the sampler's latents at t
    noise_variance(scheduler, t)                  Var of the noise in them (loss guidance)
    initial_sigma(scheduler)                      the scale of the sampler's starting noise
    model_input(scheduler, x_t, t)                what the denoiser reads (VE samplers rescale x_t)

Taught in notebooks/02 (VP vs VE), 07 (the training target) and 10 (flow).
"""
import numbers

import torch

from ..checks import check_int, check_number
from ..errors import SDLibError
from . import flow, vp
from .vp import PREDICTION_TYPES, alpha_bars, num_train_timesteps, prediction_type  # noqa: F401

KINDS = ("vp", "flow")


def kind(scheduler):
    """"flow" for flow-matching schedulers (they have `scale_noise`, diffusers' flow forward
    process), "vp" for DDPM-family ones (they have `add_noise` and an alpha_bar table).
    Used by every function here; taught in notebooks/02 (VP) and notebooks/07 (the target)."""
    if hasattr(scheduler, "scale_noise") and not hasattr(scheduler, "alphas_cumprod"):
        return "flow"
    if hasattr(scheduler, "alphas_cumprod") or hasattr(scheduler, "init_noise_sigma"):
        return "vp"  # DDPM-family samplers, VE-scaled ones (LMS, Euler) included
    raise SDLibError(f"scheduler must be a diffusers scheduler of a known process ({', '.join(KINDS)}: "
                     f"DDIMScheduler, EulerDiscreteScheduler, FlowMatchEulerDiscreteScheduler, ...), "
                     f"got {type(scheduler).__name__}.")


def is_vp(scheduler):
    """True for a scheduler of the VP (DDPM) family, False for a flow one or anything else.
    Used here and by the strength explorer; VP is taught in notebooks/02, section 4."""
    try:
        return kind(scheduler) == "vp"
    except SDLibError:
        return False


# ---------------------------------------------------------------- training: forward process, target
def add_noise(scheduler, x0, noise, t):
    """x_t at the model's training timesteps t (B,): VP x_t = sqrt(alpha_bar_t) x0 +
    sqrt(1 - alpha_bar_t) noise (DDPM eq. 4); flow x_t = (1 - sigma) x0 + sigma noise, sigma = t / T.
    Shapes (B, C, h, w). Taught in notebooks/02, section 3 (used in notebooks/06, section 2)."""
    if kind(scheduler) == "flow":
        return flow.add_noise_flow(x0, noise, flow.sigma_of(scheduler, t))
    return vp.add_noise_vp(x0, noise, alpha_bars(scheduler)[t.cpu()])


def training_target(scheduler, x0, noise, t):
    """What the model learns to output at training timesteps t: VP by `prediction_type` (the noise,
    v, or x0: `vp.training_target`); flow the velocity noise - x0. Shapes (B, C, h, w).
    Taught in notebooks/07, section 2."""
    if kind(scheduler) == "flow":
        return flow.velocity_target(x0, noise)
    return vp.training_target(prediction_type(scheduler), x0, noise, alpha_bars(scheduler)[t.cpu()])


def draw_timesteps(scheduler, n, generator):
    """n training timesteps as the model was trained: VP uniform whole numbers in 0..T-1 (DDPM,
    Ho et al. 2020, alg. 1); flow sigma = sigmoid(u), u ~ N(0, 1), the logit-normal of SD3 (Esser
    et al. 2024, sec. 3.1), as t = sigma * T. Drawn from the CPU `generator`: (n,).
    Used by training.objective; the loop that draws them is taught in notebooks/07, section 2."""
    T = num_train_timesteps(scheduler)
    if kind(scheduler) == "flow":
        return torch.sigmoid(torch.randn(n, generator=generator)) * T
    return torch.randint(0, T, (n,), generator=generator)


# ---------------------------------------------------------------- sampling: from a model output
def predict_x0(scheduler, x_t, output, t):
    """x0 from the model's `output` on the sampler's latents x_t at its timestep t (VP: DDIM eq. 12
    by prediction type, `vp.predict_x0`; flow: x0 = x_t - sigma v). Shapes (B, C, h, w).
    Taught in notebooks/05, section 4 (x0 by hand in notebooks/04, section 3)."""
    if kind(scheduler) == "flow":
        return flow.x0_from_velocity(x_t, output, float(flow.sigma_of(scheduler, t)))
    return vp.predict_x0(scheduler, x_t, output, t)


def predict_noise(scheduler, x_t, output, t):
    """The noise the model's `output` implies at the sampler's timestep t (VP: `vp.predict_noise`;
    flow: noise = x_t + (1 - sigma) v). Shapes (B, C, h, w).
    Used by generate; eps from an output is taught in notebooks/04, section 3."""
    if kind(scheduler) == "flow":
        return flow.noise_from_velocity(x_t, output, float(flow.sigma_of(scheduler, t)))
    return vp.predict_noise(scheduler, x_t, output, t)


def sampler_sigma(scheduler, t):
    """The noise level of the sampler's latents at its timestep t, a float: VP the VE-view sigma
    (`vp.sampler_sigma`), flow the noise fraction t / T. Taught in notebooks/05, section 4."""
    if kind(scheduler) == "flow":
        return float(flow.sigma_of(scheduler, t))
    return vp.sampler_sigma(scheduler, t)


def train_sigma(scheduler, t):
    """sigma of (possibly fractional) timesteps t, a float32 tensor shaped like t: VP interpolated
    in the training table (`vp.train_sigma`), flow t / T. Taught in notebooks/02, section 5."""
    if kind(scheduler) == "flow":
        return flow.sigma_of(scheduler, t)
    return vp.train_sigma(scheduler, t)


def noise_variance(scheduler, t):
    """Var of the noise in the sampler's latents at its timestep t: VP 1 - alpha_bar (sigma^2 in
    the VE scale; `vp.noise_variance`), flow sigma^2. The loss-guidance step scales by it.
    Used by the loss-guidance step; taught in notebooks/05, section 4."""
    if kind(scheduler) == "flow":
        return float(flow.sigma_of(scheduler, t)) ** 2
    return vp.noise_variance(scheduler, t)


def initial_sigma(scheduler):
    """The scale of the sampler's starting noise x_T = noise * it: VP the scheduler's
    `init_noise_sigma` (1 for DDIM, the largest sigma for VE samplers such as Euler), flow 1
    (sigma = 1 is pure noise). Used by generate's start; taught in notebooks/02, section 4 and
    notebooks/10, section 3."""
    if kind(scheduler) == "flow":
        return 1.0
    return scheduler.init_noise_sigma


def model_input(scheduler, x_t, t):
    """What the denoiser reads at the sampler's timestep t: VE samplers (LMS, Euler) rescale their
    latents to the VP scale, x_t / sqrt(sigma^2 + 1) (`scale_model_input`); DDIM and flow
    samplers hold the latents the model was trained on, so x_t itself. Shapes (B, C, h, w).
    Used by guidance.guided_output; taught in notebooks/02, section 4."""
    if kind(scheduler) == "flow":
        return x_t
    return scheduler.scale_model_input(x_t, t)


def check_same_kind(name, scheduler, model_scheduler):
    """`scheduler` if it samples the process the model was trained with (`model_scheduler`'s), else
    SDLibError naming the argument: a VP sampler reads a velocity as noise, a flow sampler reads eps as
    a velocity; both draw nonsense without an error of their own. Used by generate and the
    explorers; the two processes are taught in notebooks/10, section 1."""
    want, got = kind(model_scheduler), kind(scheduler)
    if want != got:
        examples = {"vp": "'ddim', 'euler', 'dpm++' or a DDIMScheduler",
                    "flow": "'flow_euler' or a FlowMatchEulerDiscreteScheduler"}[want]
        raise SDLibError(f"{name} must sample the model's own process ({want}: {examples}); "
                         f"{type(scheduler).__name__} samples the {got} process, so it would read the "
                         f"model's output as the wrong quantity.")
    return scheduler


def noise_to(scheduler, x0, noise, t):
    """x0 noised to the sampler's timestep t by the scheduler itself (img2img's start: VP
    `add_noise`, flow `scale_noise`), so the draw matches diffusers' pipelines. t: (B,).
    Used by generate's and inpaint's start; img2img is taught in notebooks/02, section 8."""
    if kind(scheduler) == "flow":
        return scheduler.scale_noise(x0, t, noise)
    return scheduler.add_noise(x0, noise, t)


# ---------------------------------------------------------------- argument checks
def check_timesteps(scheduler, t, batch):
    """t as a (batch,) tensor of the model's training timesteps: whole numbers 0..T-1 for VP, any
    number in [0, T] for flow (sigma * T); a single number stands for every row.
    Used here and by training.objective; timesteps are taught in notebooks/02, section 1."""
    n = num_train_timesteps(scheduler)
    is_flow = kind(scheduler) == "flow"
    if isinstance(t, numbers.Integral) and not isinstance(t, bool) and not is_flow:
        t = torch.full((batch,), check_int("t", t, lo=0, hi=n - 1))
    elif isinstance(t, numbers.Real) and not isinstance(t, bool) and is_flow:
        t = torch.full((batch,), float(check_number("t", t, lo=0, hi=n)))
    whole = isinstance(t, torch.Tensor) and not t.is_floating_point() and t.dtype != torch.bool
    ok = isinstance(t, torch.Tensor) and t.dtype != torch.bool and (is_flow or whole) and t.ndim == 1 \
        and len(t) == batch and t.numel() > 0
    top = n if is_flow else n - 1
    if not ok or float(t.min()) < 0 or float(t.max()) > top:
        got = (f"{tuple(t.shape)} {str(t.dtype).removeprefix('torch.')} with values "
               f"{t.min().item()}..{t.max().item()}" if isinstance(t, torch.Tensor) and t.numel()
               else repr(t))
        what = f"a number in [0, {n}]" if is_flow else f"a timestep in 0..{n - 1}"
        raise SDLibError(f"t must be {what} or a{'' if is_flow else 'n integer'} tensor ({batch},) of "
                         f"them, got {got}.")
    return t
