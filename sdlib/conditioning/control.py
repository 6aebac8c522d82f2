"""ControlNet (Zhang et al. 2023): a trainable copy of the UNet's encoder reads a control image and
adds its features to the frozen UNet's skip connections and middle block, through convolutions
that start at zero (so at the first step the UNet is exactly as it was).

    down_res, mid_res = ControlNet(x_t, t, c, control_image) * scale     # Zhang et al. 2023, eq. 2
    output = UNet(x_t, t, c; skips + down_res, middle + mid_res)

`Controlled` wraps the two as one denoiser with the UNet's own call signature, so the training
objective (`sdlib.training.objective.loss`) and the sampler (`generate(control_image=...)`) call it
as they call a UNet. `load_controlnet` puts a ControlNet beside a loaded model: the built-in one
(trained on the scenes' object masks: `python -m sdlib.builtin.train_control`), a public one for
SD v1.x (Canny edges), or a `controlnet/` folder beside a model's parts (the SD twins).
Taught in notebooks/09_conditioning (text conditioning: notebooks/03 and 04).
"""
import dataclasses
from pathlib import Path

import torch

from ..checks import check_number
from ..errors import SDLibError
from ..images import load_image, to_tensor
from ..models import builtin_files
from ..models.load import GPU_DEFAULTS, check_sd

BUILTIN = builtin_files.SHIPPED.parent / "builtin-controlnet-mask"  # trained here, in the package
CANNY_SD15 = "lllyasviel/control_v11p_sd15_canny"  # Canny edges, for SD v1.x (safetensors, fp16 variant)
# The course's ControlNet for a model: (where it is, which control map it reads: control_maps.KINDS)
DEFAULTS = {builtin_files.NAME: (BUILTIN, "mask"), **{name: (CANNY_SD15, "edges") for name in GPU_DEFAULTS}}


class Controlled(torch.nn.Module):
    """The UNet steered by a ControlNet reading `control_image` (1 or B, 3, H, W) in [0, 1] at
    `scale` (0: the UNet alone; 1: as trained). Called like the UNet: (x_t, t,
    encoder_hidden_states=...) -> an output with `.sample`; a batch that is a multiple of the
    control images' (classifier-free guidance doubles it) reuses them in order, as diffusers'
    pipeline does. Taught in notebooks/09, section 2 (the UNet it steers: notebooks/04)."""

    def __init__(self, unet, controlnet, control_image, scale=1.0):
        super().__init__()
        if not isinstance(control_image, torch.Tensor) or control_image.ndim != 4 or control_image.shape[1] != 3:
            got = tuple(control_image.shape) if isinstance(control_image, torch.Tensor) else type(control_image).__name__
            raise SDLibError(f"control_image must be a tensor (B, 3, H, W) in [0, 1], got {got}.")
        self.unet, self.controlnet = unet, controlnet
        self.control_image, self.scale = control_image, check_number("scale", scale, lo=0)
        self.config = unet.config

    def forward(self, sample, timestep, encoder_hidden_states, **kwargs):
        cond = self.control_image.to(sample.device, sample.dtype)
        if len(sample) % len(cond):
            raise SDLibError(f"the latents' batch ({len(sample)}) must be a multiple of the control images' "
                             f"({len(cond)}).")
        cond = cond.repeat(len(sample) // len(cond), 1, 1, 1)  # (B, 3, H, W): one per latent
        down, mid = self.controlnet(sample, timestep, encoder_hidden_states=encoder_hidden_states,
                                    controlnet_cond=cond, conditioning_scale=self.scale, return_dict=False)
        return self.unet(sample, timestep, encoder_hidden_states=encoder_hidden_states,
                         down_block_additional_residuals=down, mid_block_additional_residual=mid, **kwargs)


def _check_unet(sd):
    check_sd(sd)
    if sd.unet is None:
        raise SDLibError(f"a ControlNet steers a UNet; model {sd.name!r} has none (its denoiser is a transformer).")


def default_controlnet(sd):
    """(where the course's ControlNet for this model is, the control map kind it reads): the
    built-in mask ControlNet, a Canny ControlNet for SD v1.x, or the `controlnet/` folder beside a
    local model's parts (the twins). Taught in notebooks/09, section 1."""
    check_sd(sd)
    if sd.name in DEFAULTS:
        return DEFAULTS[sd.name]
    folder = Path(sd.name) / "controlnet"
    if (folder / "config.json").exists():
        return folder, "edges"
    raise SDLibError(f"no ControlNet is known for model {sd.name!r}; pass source= (a folder or a hub id of a "
                     f"ControlNet made for it), or use one of {sorted(DEFAULTS)}.")


def load_controlnet(sd, source=None):
    """`sd` with a ControlNet beside its UNet (a new bundle; `sd` is unchanged). source: None (the
    model's default, `default_controlnet`), a folder in the diffusers layout, or a hub id.
    Taught in notebooks/09, section 1."""
    from diffusers import ControlNetModel

    _check_unet(sd)
    source = default_controlnet(sd)[0] if source is None else source
    kw = dict(variant="fp16") if str(source) == CANNY_SD15 else {}
    try:
        controlnet = ControlNetModel.from_pretrained(source, torch_dtype=sd.dtype, use_safetensors=True, **kw)
    except (OSError, ValueError) as err:
        raise SDLibError(f"cannot load a ControlNet from {str(source)!r} (a diffusers folder with config.json "
                         f"and safetensors weights, or a hub id): {str(err).splitlines()[0]}") from None
    if controlnet.config.cross_attention_dim != sd.unet.config.cross_attention_dim:
        raise SDLibError(f"the ControlNet from {str(source)!r} reads text of width "
                         f"{controlnet.config.cross_attention_dim}, the model's UNet "
                         f"{sd.unet.config.cross_attention_dim}: it was made for another model.")
    return dataclasses.replace(sd, controlnet=controlnet.to(sd.device).eval())


def untrained_controlnet(sd):
    """A ControlNet made from `sd`'s UNet, not trained yet (`ControlNetModel.from_unet`: the encoder's
    weights copied, the zero convolutions at zero, so its residuals are zero), on `sd`'s device and
    dtype. Taught in notebooks/09, section 2."""
    from diffusers import ControlNetModel

    _check_unet(sd)
    controlnet = ControlNetModel.from_unet(sd.unet)
    # torch's own Module.to: diffusers' `to` warns on every dtype cast ("should be kept in float32: []")
    return torch.nn.Module.to(controlnet, sd.device, sd.dtype)


def control_input(sd, control_image, height, width):
    """The control image as ControlNet reads it: (B, 3, height, width) in [0, 1] on the model's
    device. control_image: anything `load_image` takes (a PIL image, an (H, W) map, ...) or a
    batch tensor (B, 3, H, W) in [0, 1]; it must already be height x width (a map of another size
    would be stretched, moving the structure it gives). Used by generate; taught in notebooks/09."""
    if isinstance(control_image, torch.Tensor) and control_image.ndim == 4:
        if control_image.shape[1] != 3:
            raise SDLibError(f"control_image must have 3 channels (B, 3, H, W), got {tuple(control_image.shape)}; "
                             "repeat a one-channel map: x.expand(-1, 3, -1, -1).")
        x = control_image.float()
    else:
        if isinstance(control_image, torch.Tensor) and control_image.ndim == 3 and control_image.shape[0] != 3:
            raise SDLibError(f"control_image must have 3 channels (3, H, W), got {tuple(control_image.shape)}.")
        x = to_tensor([load_image(control_image, name="control_image")])  # (1, 3, H, W)
    if tuple(x.shape[-2:]) != (height, width):
        raise SDLibError(f"control_image must be {height} x {width} pixels (the picture's size), got "
                         f"{x.shape[-2]} x {x.shape[-1]}.")
    if float(x.min()) < 0 or float(x.max()) > 1:
        raise SDLibError(f"control_image must hold values in [0, 1], got [{float(x.min()):.3g}, {float(x.max()):.3g}].")
    return x.to(sd.device, sd.dtype)


def controlled(sd, control_image, scale):
    """`sd` whose UNet is steered by its ControlNet (`Controlled`), for the sampler's loop.
    Used by generate; taught in notebooks/09."""
    if sd.controlnet is None:
        raise SDLibError("control_image needs a ControlNet beside the model: sd = sdlib.load_controlnet(sd).")
    scale = check_number("conditioning_scale", scale, lo=0)
    return dataclasses.replace(sd, unet=Controlled(sd.unet, sd.controlnet, control_image, scale))
