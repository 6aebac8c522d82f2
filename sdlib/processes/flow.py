"""Flow matching (rectified flow), the process SD3 and Flux were trained with: a straight line from
the data to the noise, and a model that predicts the velocity along it.

Lipman et al. 2023, "Flow matching for generative modeling"; Liu et al. 2023, "Flow straight and
fast" (rectified flow); Esser et al. 2024, "Scaling rectified flow transformers" (SD3), sec. 2-3 and
5.3.2. Symbols: sigma in [0, 1] the noise fraction (diffusers' FlowMatchEulerDiscreteScheduler keeps
it in `scheduler.sigmas`; the model is conditioned on the timestep t = sigma * T, T = 1000).

    x_t = (1 - sigma) x0 + sigma noise              (SD3 eq. 2 with a_t = 1 - t, b_t = t)
    v   = d x_t / d sigma = noise - x0              (the training target, SD3 eq. 5-6)
    x0  = x_t - sigma v,   noise = x_t + (1 - sigma) v
    x_next = x_t + (sigma_next - sigma) v           (one Euler step along the line)
    sigma' = s sigma / (1 + (s - 1) sigma)          (the timestep shift, SD3 eq. 23)

Taught in notebooks/10 (the built-in flow model: `sdlib.models.flow`).
"""
import torch

from .vp import _per_item  # a number stays a number; a (B,) tensor becomes (B, 1, 1, 1)


def add_noise_flow(x0, noise, sigma):
    """The forward process: x_t = (1 - sigma) x0 + sigma noise (what `scale_noise` does).
    sigma: a number or a (B,) tensor in [0, 1]. Shapes (B, C, h, w) in and out.
    Taught in notebooks/10, section 1 (the VP one: notebooks/02, section 3)."""
    sigma = _per_item(sigma, x0)
    return (1 - sigma) * x0 + sigma * noise


def velocity_target(x0, noise):
    """What a flow model is trained to output: v = noise - x0, the same all along the line.
    Taught in notebooks/10, section 2 (the VP target: notebooks/07, section 2)."""
    return noise - x0


def x0_from_velocity(x_t, v, sigma):
    """x0 = x_t - sigma v: follow the velocity back to sigma = 0.
    Taught in notebooks/10, section 3 (x0 from a VP output: notebooks/04, section 3)."""
    return x_t - _per_item(sigma, x_t) * v


def noise_from_velocity(x_t, v, sigma):
    """noise = x_t + (1 - sigma) v: follow it forward to sigma = 1.
    Used by the callbacks' eps; taught in notebooks/10, section 3."""
    return x_t + (1 - _per_item(sigma, x_t)) * v


def sigma_of(scheduler, t):
    """The noise fraction at the model's timestep t (a number or a tensor): t / T, as diffusers'
    flow schedulers make their timesteps (sigma * T).
    Taught in notebooks/10, section 3 (sigma for VP: notebooks/02, section 1)."""
    return torch.as_tensor(t, dtype=torch.float64).cpu().float() / float(scheduler.config.num_train_timesteps)


def euler_step(x_t, v, sigma, sigma_next):
    """One Euler step along the velocity, from noise level sigma to sigma_next < sigma:
    x_next = x_t + (sigma_next - sigma) v (what `FlowMatchEulerDiscreteScheduler.step` does).
    On a straight path with the true v it lands exactly; the sampler's error is how far the
    model's v bends. Shapes (B, C, h, w). Taught in notebooks/10, section 3."""
    return x_t + (float(sigma_next) - float(sigma)) * v


def shift_sigma(sigma, shift):
    """SD3's timestep shift (Esser et al. 2024, eq. 23): sigma' = s sigma / (1 + (s - 1) sigma).
    s > 1 moves the steps towards the noise (sigma near 1), where a larger picture still has
    structure left to decide; s = 1 changes nothing. This is `shift=` of diffusers' flow scheduler.
    sigma: a number or a tensor in [0, 1]. Taught in notebooks/10, section 5."""
    return shift * sigma / (1 + (shift - 1) * sigma)


def flux_mu(image_seq_len, base_seq_len=256, max_seq_len=4096, base_shift=0.5, max_shift=1.15):
    """Flux's resolution-dependent shift: mu grows linearly with the number of image tokens (from
    base_shift at base_seq_len to max_shift at max_seq_len, diffusers' FluxPipeline defaults) and
    the sigmas are shifted by s = exp(mu) (`shift_sigma` with that s is the scheduler's
    "exponential" time shift). Taught in notebooks/10, section 5."""
    m = (max_shift - base_shift) / (max_seq_len - base_seq_len)
    return image_seq_len * m + (base_shift - m * base_seq_len)
