"""Guidance, in one place: steering each sampling step with the text (classifier-free guidance)
and with any differentiable loss (loss guidance), and the losses themselves.

- CFG (Ho & Salimans 2022): the denoiser runs on [uncond; text] and the step follows
  out_uncond + scale * (out_text - out_uncond): `cfg_embeddings`, `guided_output`.
- Loss guidance: `sdlib.generate(..., loss_fn=..., loss_scale=...)` accepts any function of the
  decoded x0_pred, an image batch (B, 3, H, W) in [0, 1], that returns a scalar to minimise;
  `loss_guidance` takes its gradient and `loss_guidance_step` moves x_t downhill.
- The losses here are plain functions of that image, so they can be read, tested and swapped;
  `blue_fraction` measures the effect (`sdlib.sampling.sweeps` runs one setting over several values).

    images = sweep(sd, "a red circle", "loss_scale", [0, 3, 10], loss_fn=blue_loss)
    blue_fraction(images)        # tensor (3,): rises with the loss scale

Taught in notebooks/05_guidance (and CFG first in notebooks/00).
"""
import torch

from .. import processes
from ..checks import check_number, shape_or_type
from ..errors import SDLibError
from ..images import to_tensor
from ..models import vae
from ..models.sd3 import JointText, transformer_output

# A loss scale that turns the built-in model's pictures clearly bluer with loss_every=1 at 25 steps
# (as `sdlib.builtin.evaluate.blue_effect` runs it: blue fraction 0.29 -> 0.55 on 8 held-out prompts)
# without washing them out; with loss_every=2 at 10-15 steps about 100 does the same. Larger scales
# trade the prompt for the loss. The scale means the same under every sampler of the VP process
# (`loss_guidance_step`); SD v1 at 512 px needs a few hundred (fast.ai's deep dive: 200). A flow
# model's x0 = x_t - sigma v moves far less per step at one scale (notebooks/10, section 7).
DEFAULT_BLUE_SCALE = 30.0


# ---------------------------------------------------------------- classifier-free guidance
def cfg_embeddings(text_emb, uncond_emb, guidance_scale):
    """What the denoiser is called with: [uncond; text] (2B, 77, D) for classifier-free guidance, or
    one half alone when the other would get weight 0 (scale 1: text only; scale 0: uncond only).
    Taught in notebooks/00, section 2 and notebooks/05, section 2."""
    if guidance_scale == 1:
        return text_emb
    if guidance_scale == 0:
        return uncond_emb
    if isinstance(text_emb, JointText):  # SD3: tokens and pooled vectors, stacked alike
        return JointText.cat([uncond_emb, text_emb])
    return torch.cat([uncond_emb, text_emb])


@torch.no_grad()
def guided_output(sd, scheduler, x_t, t, emb, guidance_scale):
    """The denoiser's prediction at timestep t (eps, v or a velocity, by the model's kind), with
    classifier-free guidance (Ho & Salimans 2022, eq. 6):
        out = out_uncond + guidance_scale * (out_text - out_uncond).
    Taught in notebooks/00, section 2 and notebooks/05, section 2."""
    cfg = len(emb) == 2 * len(x_t)
    x_in = torch.cat([x_t] * 2) if cfg else x_t  # (2B or B, 4, h, w)
    x_in = processes.model_input(scheduler, x_in, t)  # VE samplers: x_t / sqrt(sigma^2 + 1)
    if sd.unet is None:  # SD3's transformer: the tokens and the pooled vector (notebooks/11)
        out = transformer_output(sd.transformer, x_in, t, emb)
    else:
        out = sd.unet(x_in, t, encoder_hidden_states=emb).sample
    if not cfg:
        return out
    out_uncond, out_text = out.chunk(2)  # (B, 4, h, w) each
    return out_uncond + guidance_scale * (out_text - out_uncond)


# ---------------------------------------------------------------- loss guidance
def loss_guidance(sd, scheduler, x_t, output, t, loss_fn, loss_scale):
    """Nudge x_t downhill on loss_fn(decoded x0_pred) * loss_scale: the gradient flows through
    the VAE decoder and the x0 formula (not the UNet), then `loss_guidance_step`.
    Used by generate (`loss_fn`); taught in notebooks/05, section 4."""
    x_t = x_t.detach().requires_grad_()
    image = vae.decode(sd, processes.predict_x0(scheduler, x_t, output.detach(), t), grad=True)
    loss = loss_fn(image)  # (B, 3, H, W) in [0, 1] -> a scalar
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise SDLibError(f"loss_fn must return one number (a scalar tensor), got "
                         f"{shape_or_type(loss)}.")
    grad = torch.autograd.grad(loss.sum() * loss_scale, x_t)[0]  # d loss / d x_t
    return loss_guidance_step(scheduler, x_t.detach(), grad, t)


def loss_guidance_step(scheduler, x_t, grad, t):
    """Move x_t downhill on a guidance loss: x_t - Var(noise in x_t) * grad.

    grad is d loss / d x_t. In the VE scale the noise in x_t has variance sigma^2, and this is
    the k-diffusion "cond_fn" step x_t - sigma^2 * grad (Crowson's k-diffusion; the fast.ai
    Stable Diffusion deep dive). The same step written in the VP scale (x_VP = sqrt(alpha_bar) x_VE,
    so grad_VP = grad_VE / sqrt(alpha_bar)) is x_t - (1 - alpha_bar) * grad: its noise variance
    (`processes.noise_variance`). One `loss_scale` therefore moves the picture alike under DDIM
    and Euler. On the flow path the noise's variance is sigma^2, and x0 = x_t - sigma v (v held
    fixed) moves one for one with x_t, so a flow model's guess moves by sigma^2 * grad per step,
    where an eps model's moves by (1 - alpha_bar) / alpha_bar * grad.
    Taught in notebooks/05, section 4 (the flow case: notebooks/10, section 7).
    """
    return x_t - processes.noise_variance(scheduler, t) * grad


# ---------------------------------------------------------------- guidance losses
def _check(images):
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        got = shape_or_type(images)
        raise SDLibError(f"images: a guidance loss takes a tensor (B, 3, H, W) in [0, 1], got {got}.")
    return images


def blue_loss(images):
    """How far the blue channel is from 0.9, on average: small when every pixel is very blue.
    (The loss from the fast.ai Stable Diffusion deep dive.) Taught in notebooks/05, section 4."""
    return (_check(images)[:, 2] - 0.9).abs().mean()


def _rgb(colour):
    """A colour name (any of matplotlib's: "purple", "tab:blue", "#ff8800") or three numbers
    (0..1, or 0..255 if any is > 1) -> (3,) float tensor in [0, 1]."""
    if isinstance(colour, str):
        from matplotlib.colors import is_color_like, to_rgb

        if not is_color_like(colour):
            raise SDLibError(f"unknown colour {colour!r}; use a name like 'purple' or 'tab:blue', "
                             "a hex code like '#ff8800', or three RGB numbers.")
        colour = to_rgb(colour)
    rgb = torch.as_tensor(colour, dtype=torch.float32).flatten()
    if rgb.numel() != 3 or rgb.min() < 0 or rgb.max() > 255:
        raise SDLibError(f"a colour is three numbers in 0..1 (or 0..255), got {colour!r}.")
    return rgb / 255 if rgb.max() > 1 else rgb


def colour_loss(images, colour):
    """Mean distance of every pixel from a target colour (a name or RGB): pulls the whole image
    towards it. blue_loss is the blue-channel-only cousin of this.
    Taught in notebooks/05, section 5."""
    target = _rgb(colour).to(images.device, images.dtype)[None, :, None, None]  # (1, 3, 1, 1)
    return (_check(images) - target).abs().mean()


def brightness_loss(images, target=0.5):
    """Distance of the mean grey level of each pixel from `target` (0 black, 1 white).
    Taught in notebooks/05, section 6."""
    target = check_number("target", target, lo=0, hi=1)
    return (_check(images).mean(1) - target).abs().mean()


def dark_left_loss(images):
    """Mean brightness of the left half: minimising it keeps the left half dark, whatever the
    right half does (a loss can look at any part of the picture).
    Taught in notebooks/05, section 5."""
    images = _check(images)
    return images[..., : images.shape[-1] // 2].mean()


def blue_fraction(images, margin=0.05):
    """Per image, the fraction of pixels whose blue channel beats both red and green by `margin`:
    a measure of "how blue" that does not reward plain white. Returns a tensor (B,).
    Taught in notebooks/05, section 4."""
    margin = check_number("margin", margin, lo=0, hi=1)
    x = to_tensor(images)  # (B, 3, H, W) in [0, 1]
    r, g, b = x.detach().float().unbind(1)
    return ((b > r + margin) & (b > g + margin)).float().mean((1, 2))
