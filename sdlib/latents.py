"""VAE helpers: images <-> scaled latents, the 48x compression at the heart of latent diffusion.

An RGB image (B, 3, H, W) becomes latents (B, 4, H/8, W/8): 3*64 / 4 = 48 numbers in, 1 out.
Latents leave these helpers multiplied by `vae.config.scaling_factor` (0.18215 for SD v1), which
brings them to roughly unit variance, the scale the UNet was trained on.
"""
import torch

from .errors import SDLibError
from .images import to_tensor


def check_size(height, width, multiple=8):
    if height % multiple or width % multiple:
        raise SDLibError(
            f"image is {width}x{height} but the VAE needs sides that are multiples of {multiple}; "
            f"resize it, e.g. sdlib.load_image(img, size={max(multiple, height // multiple * multiple)}).")


def encode(sd, images, sample=False, generator=None):
    """Images (PIL/array/tensor in [0, 1]) -> scaled latents (B, 4, H/8, W/8).

    sample=False uses the mean of the VAE's posterior (deterministic); True draws from it.
    """
    x = to_tensor(images)  # (B, 3, H, W) in [0, 1]
    check_size(*x.shape[-2:], multiple=sd.vae_scale)
    x = (x * 2 - 1).to(sd.device, sd.dtype)  # the VAE works in [-1, 1]
    with torch.no_grad():
        dist = sd.vae.encode(x).latent_dist
    z = dist.sample(generator) if sample else dist.mean
    return z * sd.vae.config.scaling_factor  # (B, 4, H/8, W/8)


def decode(sd, latents, grad=False):
    """Scaled latents (B, 4, h, w) -> images in [0, 1], (B, 3, 8h, 8w). grad=True keeps the graph."""
    if latents.ndim != 4 or latents.shape[1] != sd.vae.config.latent_channels:
        raise SDLibError(f"expected latents of shape (B, {sd.vae.config.latent_channels}, h, w), "
                         f"got {tuple(latents.shape)}.")
    with torch.set_grad_enabled(grad):
        x = sd.vae.decode(latents.to(sd.device, sd.dtype) / sd.vae.config.scaling_factor).sample
    return (x / 2 + 0.5).clamp(0, 1)  # (B, 3, H, W)
