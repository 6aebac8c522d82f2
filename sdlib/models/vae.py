"""VAE helpers: images <-> scaled latents, the 48x compression at the heart of latent diffusion.

An RGB image (B, 3, H, W) becomes latents (B, 4, H/8, W/8): 3*64 / 4 = 48 numbers in, 1 out.
Latents leave these helpers multiplied by `vae.config.scaling_factor` (0.18215 for SD v1; Rombach
et al. 2022, "High-resolution image synthesis with latent diffusion models", sec. 4.3.2), which
brings them to roughly unit variance, the scale the UNet was trained on. SD3's VAE also has a
`shift_factor` (Esser et al. 2024, "Scaling rectified flow transformers", the diffusers config):

    latents = (z - shift_factor) * scaling_factor,   z = latents / scaling_factor + shift_factor

(SD v1/v2 have none: shift 0.) `latent_scale` reads both; encode and decode are its one home.
"""
import torch

from ..checks import check_int, check_number, shape_or_type
from ..errors import SDLibError
from ..images import check_unit_range, from_vae_range, to_tensor, to_vae_range
from .load import check_sd

RGB = 3  # colour channels of an image


def check_size(height, width, multiple):
    """Raise unless both sides are whole numbers of pixels that are multiples of `multiple`.
    Used by the VAE helpers and inpaint; sizes are taught in notebooks/01, section 2."""
    check_int("height", height, lo=1)
    check_int("width", width, lo=1)
    if height % multiple or width % multiple:
        raise SDLibError(
            f"image is {width}x{height} but the VAE needs sides that are multiples of {multiple}; "
            f"resize it, e.g. sdlib.load_image(img, size={max(multiple, height // multiple * multiple)}).")


def check_latents(name, latents, channels=None):
    """A float tensor (B, C, h, w) (C = `channels` when given), else SDLibError naming `name`.
    Used by decode, inpaint and training; latents are taught in notebooks/01, section 2."""
    shape = f"(B, {channels if channels is not None else 'C'}, h, w)"
    if not isinstance(latents, torch.Tensor):
        raise SDLibError(f"{name} must be a float tensor {shape} of latents, got "
                         f"{type(latents).__name__}.")
    if latents.ndim != 4 or (channels is not None and latents.shape[1] != channels) \
            or not latents.is_floating_point():
        hint = f"; add the batch axis with {name}[None]" if latents.ndim == 3 else ""
        raise SDLibError(f"{name} must be a float tensor {shape} of latents, got "
                         f"{tuple(latents.shape)} {str(latents.dtype).removeprefix('torch.')}{hint}.")
    return latents


def _check_flag(name, value):
    if not isinstance(value, bool):
        raise SDLibError(f"{name} must be True or False, got {value!r}.")
    return value


def latent_scale(vae):
    """(scaling_factor, shift_factor) of a diffusers VAE; shift 0 where its config has none (SD v1/v2).
    Used by encode and decode; taught in notebooks/01, section 2 (the shift in notebooks/11)."""
    return vae.config.scaling_factor, getattr(vae.config, "shift_factor", None) or 0.0


def encode(sd, images, sample=False, generator=None):
    """Images (PIL/array/tensor in [0, 1]) -> scaled latents (B, 4, H/8, W/8).

    sample=False uses the mean of the VAE's posterior (deterministic); True draws from it.
    Taught in notebooks/01, section 2.
    """
    check_sd(sd)
    _check_flag("sample", sample)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise SDLibError(f"generator must be None or a torch.Generator (e.g. "
                         f"torch.Generator().manual_seed(0)), got {generator!r}.")
    x = check_unit_range("images", to_tensor(images))  # (B, 3, H, W) in [0, 1]
    check_size(*x.shape[-2:], multiple=sd.vae_scale)
    x = to_vae_range(x).to(sd.device, sd.dtype)  # the VAE works in [-1, 1]
    with torch.no_grad():
        dist = sd.vae.encode(x).latent_dist
    z = dist.sample(generator) if sample else dist.mean
    scale, shift = latent_scale(sd.vae)
    return (z - shift) * scale  # (B, 4, H/8, W/8)


def decode(sd, latents, grad=False):
    """Scaled latents (B, 4, h, w) -> images in [0, 1], (B, 3, 8h, 8w). grad=True keeps the graph.
    Taught in notebooks/01, section 4."""
    check_sd(sd)
    check_latents("latents", latents, sd.vae.config.latent_channels)
    _check_flag("grad", grad)
    scale, shift = latent_scale(sd.vae)
    with torch.set_grad_enabled(grad):
        x = sd.vae.decode(latents.to(sd.device, sd.dtype) / scale + shift).sample
    return from_vae_range(x)  # (B, 3, H, W) in [0, 1]


# ---------------------------------------------------------------- latent arithmetic
def compression(sd, height=None, width=None):
    """(image shape, latent shape, factor): how many pixel numbers one latent number stands for.

    Computed from the model's own sizes (3 colour channels, `sd.vae_scale` pixels per latent cell
    along each side, `latent_channels` channels), so it says 48 for SD v1 without assuming it.
    Taught in notebooks/01, section 2.
    """
    check_sd(sd)
    height = sd.image_size if height is None else height
    width = sd.image_size if width is None else width
    check_size(height, width, multiple=sd.vae_scale)
    image = (1, RGB, height, width)
    latent = (1, sd.vae.config.latent_channels, height // sd.vae_scale, width // sd.vae_scale)
    n_image, n_latent = RGB * height * width, latent[1] * latent[2] * latent[3]
    return image, latent, n_image / n_latent


def _check_pair(z_a, z_b, alpha):
    """Two latents of one shape and a blend weight (any number: outside [0, 1] extrapolates)."""
    for name, z in (("z_a", z_a), ("z_b", z_b)):
        if not isinstance(z, torch.Tensor) or not z.is_floating_point() or z.ndim < 2:
            got = shape_or_type(z)
            raise SDLibError(f"{name} must be a float tensor (B, C, h, w) of latents, got {got}.")
    if z_a.shape != z_b.shape:
        raise SDLibError(f"cannot blend latents of shapes {tuple(z_a.shape)} and {tuple(z_b.shape)}; "
                         "z_a and z_b must have one shape.")
    return check_number("alpha", alpha)


def lerp(z_a, z_b, alpha):
    """Straight-line blend (1 - alpha) * z_a + alpha * z_b of two latents of one shape.
    Taught in notebooks/01, section 6."""
    alpha = _check_pair(z_a, z_b, alpha)
    return (1 - alpha) * z_a + alpha * z_b


def slerp(z_a, z_b, alpha, eps=1e-7):
    """Spherical blend: follows the arc between z_a and z_b, keeping the norm in between
    (Shoemake 1985): sin((1 - alpha) theta) / sin(theta) z_a + sin(alpha theta) / sin(theta) z_b.

    Why: halfway along a straight line between two unrelated Gaussian-like latents the norm
    drops by about 1/sqrt(2), so the midpoint is "too quiet"; slerp keeps it at the same scale.
    Falls back to `lerp` for (nearly) parallel latents. Each batch item is blended on its own.
    Taught in notebooks/01, section 6.
    """
    alpha = _check_pair(z_a, z_b, alpha)
    eps = check_number("eps", eps, lo=0, lo_open=True)
    a, b = z_a.flatten(1).double(), z_b.flatten(1).double()  # (B, N)
    cos = ((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(eps)).clamp(-1, 1)  # (B,)
    theta = torch.arccos(cos)
    sin = torch.sin(theta)
    parallel = sin.abs() < eps
    safe = torch.where(parallel, torch.ones_like(sin), sin)
    w_a = torch.where(parallel, 1 - alpha + 0 * sin, torch.sin((1 - alpha) * theta) / safe)
    w_b = torch.where(parallel, alpha + 0 * sin, torch.sin(alpha * theta) / safe)
    out = w_a[:, None] * a + w_b[:, None] * b
    return out.reshape(z_a.shape).to(z_a.dtype)


def edit_channel(latents, channel, scale=1.0, shift=0.0):
    """A copy of `latents` (B, C, h, w) with one channel replaced by scale * channel + shift.

    scale=0 zeroes the channel; scale=-1 flips it; shift adds a constant over the whole picture.
    Decode the result to see what that channel carries.
    Taught in notebooks/01, sections 6 and 8.
    """
    check_latents("latents", latents)
    check_int("channel", channel)
    if not 0 <= channel < latents.shape[1]:
        raise SDLibError(f"channel must be in 0..{latents.shape[1] - 1} for latents of shape "
                         f"{tuple(latents.shape)}, got {channel}.")
    scale, shift = check_number("scale", scale), check_number("shift", shift)
    out = latents.clone()
    out[:, channel] = latents[:, channel] * scale + shift  # (B, h, w)
    return out
