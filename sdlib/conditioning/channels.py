"""Conditioning by concatenation: extra input channels beside the latents (SD 2's depth-to-image).

The UNet's first convolution reads more channels than the latents have; the extra ones carry the
condition at latent size, the same at every step:

    output = UNet(concat([x_t, d], channels), t, c)       # x_t (B, 4, h, w), d (B, k, h, w)

depth-to-image (Stable Diffusion 2, stabilityai's depth model) feeds one channel, a depth map
rescaled to [-1, 1] per picture; the x4 upscaler feeds three, a low-resolution picture; SD's
inpainting model five (the mask and the masked picture's latents: `sampling.inpaint`). A UNet
learns such an input by widening its first convolution with zero weights for the new channels
(`widen_conv_in`: at the first step the UNet is exactly as it was, as with ControlNet's zero
convolutions) and fine-tuning. Taught in notebooks/09_conditioning.
"""
import dataclasses
from pathlib import Path

import numpy as np
import torch

from ..errors import SDLibError
from ..models import builtin_files
from ..models.load import GPU_DEFAULTS, check_sd, load_sd

DEPTH_BUILTIN = builtin_files.SHIPPED.parent / "builtin-depth"  # the built-in UNet, fine-tuned with a depth channel
DEPTH_SD2 = "sd2-community/stable-diffusion-2-depth"  # SD 2's depth model (512 px, OpenCLIP text encoder)


class Concatenated(torch.nn.Module):
    """A UNet that reads the latents with `extra` (1 or B, k, h, w) beside them, called like the
    UNet itself (x_t (B, 4, h, w), t, encoder_hidden_states=...). A batch that is a multiple of
    the extra's (classifier-free guidance doubles it) reuses it in order, as diffusers' depth and
    upscale pipelines do. class_labels (1,): a class the UNet also reads at every call (the
    upscaler's noise level), repeated to the batch. Taught in notebooks/09."""

    def __init__(self, unet, extra, class_labels=None):
        super().__init__()
        self.unet, self.extra, self.class_labels = unet, extra, class_labels
        self.config = unet.config

    def forward(self, sample, timestep, encoder_hidden_states, **kwargs):
        extra = self.extra.to(sample.device, sample.dtype)
        extra = extra.repeat(len(sample) // len(extra), 1, 1, 1)  # (B, k, h, w)
        x_in = torch.cat([sample, extra], dim=1)  # (B, 4 + k, h, w)
        if self.class_labels is not None:
            kwargs["class_labels"] = self.class_labels.to(sample.device).repeat(len(sample) // len(self.class_labels))
        return self.unet(x_in, timestep, encoder_hidden_states=encoder_hidden_states, **kwargs)


def extra_channels(sd):
    """How many input channels the UNet reads beyond the latents (0 for SD v1, 1 for SD 2's depth
    model, 5 for an inpainting model). Taught in notebooks/09."""
    return check_sd(sd).denoiser.config.in_channels - sd.vae.config.latent_channels


def depth_input(sd, depth_map, height, width):
    """The depth channel as SD 2's depth-to-image pipeline makes it (`prepare_depth_map`):
    the map resized to latent size (bicubic), then rescaled per picture to [-1, 1]:
        d = 2 (depth - min) / (max - min) - 1
    so a map scaled by a positive number or shifted (a depth + b, a > 0) gives the same channel. depth_map: an
    (H, W) array or tensor, or a (B, H, W) tensor, larger = nearer. Returns (1 or B, 1, h, w).
    Used by generate(depth_map=); taught in notebooks/09."""
    if isinstance(depth_map, np.ndarray):
        depth_map = torch.from_numpy(np.asarray(depth_map, dtype=np.float32))
    if not isinstance(depth_map, torch.Tensor) or depth_map.ndim not in (2, 3) or not depth_map.is_floating_point():
        got = tuple(depth_map.shape) if isinstance(depth_map, (torch.Tensor, np.ndarray)) else type(depth_map).__name__
        raise SDLibError(f"depth_map must be a float map (H, W) or a batch (B, H, W), got {got}.")
    d = depth_map.reshape(-1, 1, *depth_map.shape[-2:]).to(sd.device, sd.dtype)  # (B, 1, H, W)
    if not torch.isfinite(d).all():
        raise SDLibError("depth_map must hold finite numbers.")
    return rescaled_depth(d, (height // sd.vae_scale, width // sd.vae_scale)).to(sd.dtype)  # (B, 1, h, w)


def rescaled_depth(d, size):
    """Depth maps (B, 1, H, W) -> (B, 1, *size) in [-1, 1]: resized (bicubic), then each rescaled by
    its own min and max, d = 2 (depth - min) / (max - min) - 1 (diffusers' `prepare_depth_map`).
    Used by depth_input and the depth model's training; taught in notebooks/09."""
    d = torch.nn.functional.interpolate(d, size=size, mode="bicubic", align_corners=False)
    lo, hi = d.amin(dim=[1, 2, 3], keepdim=True), d.amax(dim=[1, 2, 3], keepdim=True)
    if (hi == lo).any():
        raise SDLibError("depth_map must vary (its largest and smallest values differ): each map is "
                         "rescaled to [-1, 1] by them.")
    return 2.0 * (d - lo) / (hi - lo) - 1.0


def with_extra(sd, extra, class_labels=None):
    """`sd` whose UNet reads `extra` beside the latents (`Concatenated`), for the sampler's loop.
    Used by generate and upscale; taught in notebooks/09."""
    if extra.shape[1] != extra_channels(sd):
        raise SDLibError(f"the UNet reads {sd.denoiser.config.in_channels} input channels, the latents "
                         f"{sd.vae.config.latent_channels}: it takes {extra_channels(sd)} extra, got {extra.shape[1]}.")
    return dataclasses.replace(sd, unet=Concatenated(sd.unet, extra, class_labels))


def widen_conv_in(unet, extra):
    """A copy of `unet` whose first convolution reads `extra` more input channels, their weights
    zero (so it computes what `unet` did, whatever they hold) and the rest copied: the start of
    fine-tuning a depth (extra=1) or upscaling (extra=3) model. Taught in notebooks/09."""
    import copy

    if not isinstance(extra, int) or isinstance(extra, bool) or extra < 1:
        raise SDLibError(f"extra must be a whole number of channels >= 1, got {extra!r}.")
    wide = copy.deepcopy(unet)
    old = unet.conv_in
    conv = torch.nn.Conv2d(old.in_channels + extra, old.out_channels, old.kernel_size, old.stride, old.padding)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[:, :old.in_channels] = old.weight  # (C_out, C_in + extra, 3, 3): the new inputs at zero
        conv.bias.copy_(old.bias)
    wide.conv_in = conv.to(old.weight.device, old.weight.dtype)
    wide.register_to_config(in_channels=old.in_channels + extra)
    return wide


def load_depth_model(sd):
    """A depth-to-image model of `sd`'s world: for the built-in model, the built-in model with its
    UNet fine-tuned with a depth channel (`DEPTH_BUILTIN`, trained here: training/depth-builtin.md);
    for a local folder with a `depth_unet/` beside its parts (the twins), that UNet; for SD v1.x
    from the hub, SD 2's depth model (`DEPTH_SD2`: a whole model of its own, loaded anew).
    Taught in notebooks/09."""
    from diffusers import UNet2DConditionModel

    check_sd(sd)
    if sd.name in GPU_DEFAULTS:
        return load_sd(DEPTH_SD2, device=sd.device, dtype=sd.dtype)
    folder = DEPTH_BUILTIN if sd.name == builtin_files.NAME else Path(sd.name) / "depth_unet"
    if not (folder / "config.json").exists():
        raise SDLibError(f"no depth model is known for model {sd.name!r}: load one with sdlib.load_sd (SD 2's is "
                         f"{DEPTH_SD2!r}), or widen this UNet with widen_conv_in and fine-tune it.")
    unet = UNet2DConditionModel.from_pretrained(folder, torch_dtype=sd.dtype, use_safetensors=True)
    return dataclasses.replace(sd, unet=unet.to(sd.device).eval(), name=f"{sd.name} (depth UNet)")
