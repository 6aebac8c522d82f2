"""Stable Diffusion's training objective, written once: draw t and noise, noise the latents, ask the
denoiser, compare with the target. Textual inversion and DreamBooth-LoRA (`sdlib.training.finetune`,
`sdlib.conditioning.embeddings`) minimise it, and so does the built-in model's trainer
(`sdlib.builtin.train`; tests/test_train.py checks its loss is this one).

DDPM's simple loss (Ho et al. 2020, eq. 14), for any process (`sdlib.processes`):

    L = E_{x0, t, noise} || target(x0, noise, t) - model(x_t, t, c) ||^2,   x_t = add_noise(x0, noise, t)

with the target the model's kind predicts: the noise (eps), v (Salimans & Ho 2022) or x0 for VP
models, the velocity noise - x0 for flow models (Lipman et al. 2023; Esser et al. 2024).

Taught in notebooks/03, section 6 (learning a word) and notebooks/07 (the loop by hand).
"""
import torch
import torch.nn.functional as F

from .. import processes
from ..errors import SDLibError
from ..models.load import check_sd
from ..models.unet import check_text_emb
from ..models.vae import check_latents


def loss(denoiser, scheduler, x0, text_emb, t, noise):
    """The loss at chosen (t, noise), for a denoiser and its scheduler alone (no bundle, no checks:
    the trainers call it on their own models):
    x0 (B, 4, h, w) latents, text_emb (B, 77, D), t (B,) training timesteps, noise like x0.
    Mean squared error over every element, in fp32: a scalar with gradients.
    Used by denoising_loss; taught in notebooks/07, section 2 and notebooks/03, section 6."""
    x_t = processes.add_noise(scheduler, x0, noise, t)  # (B, 4, h, w): the forward process
    output = denoiser(x_t, t.to(x0.device), encoder_hidden_states=text_emb).sample  # (B, 4, h, w)
    target = processes.training_target(scheduler, x0, noise, t)  # (B, 4, h, w)
    return F.mse_loss(output.float(), target.float())


def denoising_loss(sd, x0, text_emb, t, noise):
    """`loss` for the model bundle `sd` at chosen (t, noise), every argument checked: x0
    (B, 4, h, w), text_emb (1 or B, 77, D), t a training timestep or (B,) of them, noise like x0.
    Taught in notebooks/03, section 6 and notebooks/07."""
    check_sd(sd)
    check_latents("x0", x0, sd.denoiser.config.in_channels)
    text_emb = check_text_emb(sd, text_emb, len(x0))  # (B, 77, D)
    t = processes.check_timesteps(sd.scheduler, t, len(x0))  # (B,)
    check_latents("noise", noise, sd.denoiser.config.in_channels)
    if noise.shape != x0.shape:
        raise SDLibError(f"noise must have the shape of x0 {tuple(x0.shape)}, got "
                         f"{tuple(noise.shape)}.")
    return loss(sd.denoiser, sd.scheduler, x0, text_emb, t, noise)


def draw_t_and_noise(sd, x0, generator):
    """A training step's random (t, noise) for latents x0 (B, 4, h, w): t as the model was trained
    (`processes.draw_timesteps`: uniform in 0..T-1 for SD) (B,), noise ~ N(0, I) shaped like x0,
    both drawn (in that order) from the CPU `generator`, so every device draws the same numbers.
    Taught in notebooks/07."""
    t = processes.draw_timesteps(sd.scheduler, len(x0), generator)  # (B,)
    noise = torch.randn(x0.shape, generator=generator).to(x0.device, x0.dtype)  # (B, 4, h, w)
    return t, noise


def diffusion_loss(sd, x0, text_emb, generator):
    """One sample of the objective: (t, noise) drawn from `generator` (a CPU torch.Generator;
    `draw_t_and_noise`), then `denoising_loss`. x0: (B, 4, h, w) latents; text_emb: (1 or B, 77, D).
    Returns a scalar (fp32) with gradients. Taught in notebooks/07."""
    check_sd(sd)
    check_latents("x0", x0, sd.denoiser.config.in_channels)
    if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
        raise SDLibError(f"generator must be a CPU torch.Generator, such as "
                         f"torch.Generator().manual_seed(0), got {generator!r}.")
    t, noise = draw_t_and_noise(sd, x0, generator)  # (B,), (B, 4, h, w)
    return denoising_loss(sd, x0, text_emb, t, noise)
