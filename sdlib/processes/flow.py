"""Flow matching (rectified flow), the process SD3 and Flux were trained with: a straight line from
the data to the noise, and a model that predicts the velocity along it.

Lipman et al. 2023, "Flow matching for generative modeling"; Liu et al. 2023, "Flow straight and
fast" (rectified flow); Esser et al. 2024, "Scaling rectified flow transformers" (SD3), sec. 2-3.
Symbols: sigma in [0, 1] the noise fraction (diffusers' FlowMatchEulerDiscreteScheduler keeps it in
`scheduler.sigmas`; the model is conditioned on the timestep t = sigma * T, T = 1000).

    x_t = (1 - sigma) x0 + sigma noise              (SD3 eq. 2 with a_t = 1 - t, b_t = t)
    v   = d x_t / d sigma = noise - x0              (the training target, SD3 eq. 5-6)
    x0  = x_t - sigma v,   noise = x_t + (1 - sigma) v

The formulas are here so that the process interface (`sdlib.processes`) knows where flow models
go; no notebook teaches them yet, and no model here is trained with them yet.
"""
import torch

from .vp import _per_item  # a number stays a number; a (B,) tensor becomes (B, 1, 1, 1)


def add_noise_flow(x0, noise, sigma):
    """The forward process: x_t = (1 - sigma) x0 + sigma noise (what `scale_noise` does).
    sigma: a number or a (B,) tensor in [0, 1]. Shapes (B, C, h, w) in and out.
    No notebook teaches flow yet; the VP forward process: notebooks/02, section 3."""
    sigma = _per_item(sigma, x0)
    return (1 - sigma) * x0 + sigma * noise


def velocity_target(x0, noise):
    """What a flow model is trained to output: v = noise - x0, the same all along the line.
    No notebook teaches flow yet; the VP target: notebooks/07, section 2."""
    return noise - x0


def x0_from_velocity(x_t, v, sigma):
    """x0 = x_t - sigma v: follow the velocity back to sigma = 0.
    No notebook teaches flow yet; x0 from a VP output: notebooks/04, section 3."""
    return x_t - _per_item(sigma, x_t) * v


def noise_from_velocity(x_t, v, sigma):
    """noise = x_t + (1 - sigma) v: follow it forward to sigma = 1.
    No notebook teaches flow yet; noise from a VP output: notebooks/04, section 3."""
    return x_t + (1 - _per_item(sigma, x_t)) * v


def sigma_of(scheduler, t):
    """The noise fraction at the model's timestep t (a number or a tensor): t / T, as diffusers'
    flow schedulers make their timesteps (sigma * T).
    No notebook teaches flow yet; sigma for VP: notebooks/02, section 1."""
    return torch.as_tensor(t, dtype=torch.float64).cpu().float() / float(scheduler.config.num_train_timesteps)
