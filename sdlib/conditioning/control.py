"""ControlNet (Zhang et al. 2023): a trainable copy of the UNet's encoder reads a control image and
adds its features to the frozen UNet's skip connections and middle block, through convolutions
that start at zero (so at the first step the UNet is exactly as it was).

    down_res, mid_res = ControlNet(x_t, t, c, control_image) * scale
    output = UNet(x_t, t, c; skips + down_res, middle + mid_res)

`Controlled` wraps the two as one denoiser with the UNet's own call signature, so the training
objective (`sdlib.training.objective.loss`) and the sampler call it as they call a UNet.
The built-in model's ControlNet is trained with it (`python -m sdlib.builtin.train_control`); no
notebook teaches ControlNet yet (conditioning by text is taught in notebooks/03 and 04).
"""
import torch

from ..checks import check_number
from ..errors import SDLibError


class Controlled(torch.nn.Module):
    """The UNet steered by a ControlNet reading `control_image` (1 or B, 3, H, W) in [0, 1] at
    `scale` (0: the UNet alone; 1: as trained). Called like the UNet: (x_t, t,
    encoder_hidden_states=...) -> an output with `.sample`; a batch that is a multiple of the
    control images' (classifier-free guidance doubles it) reuses them in order, as diffusers'
    pipeline does. No notebook teaches it yet; the UNet it steers is taught in notebooks/04."""

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
