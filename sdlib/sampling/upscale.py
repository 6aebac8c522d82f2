"""The Stable Diffusion x4 upscaler, by hand: a low-resolution picture as 3 extra input channels.

The upscaler's UNet reads the latents with the low-resolution picture beside them (its VAE shrinks
by 4, so the picture is already at latent size): concatenated channels, as depth-to-image's depth
map (`conditioning.channels`). Before that the picture is itself noised, to a `noise_level` the
UNet is also told (as a class label), so it learns to restore detail a blurry or noisy input
lacks rather than copy it (noise conditioning augmentation; Ho et al. 2022, "Cascaded diffusion
models", sec. 4.1):

    low_t = sqrt(abar_s) low + sqrt(1 - abar_s) noise        # s = noise_level, low_res_scheduler
    output = UNet(concat([x_t, low_t]), t, c, class = s)     # x_t (B, 4, h, w), low_t (B, 3, h, w)

Same seed, parts and settings -> the pixels of diffusers' StableDiffusionUpscalePipeline (tests).
Taught in notebooks/09_conditioning (on a twin of the x4 upscaler: random weights, real shapes).
"""
import torch

from ..checks import check_int
from ..conditioning.channels import with_extra
from ..images import load_image, to_tensor, to_vae_range
from .guidance import cfg_embeddings, guided_output
from .sampler import check_generate_args, finish, step_kwargs, text_embeddings

# The x4 upscaler's low_res_scheduler (its scheduler_config.json): the noise it adds to the picture.
LOW_RES_SCHEDULER = dict(beta_start=0.0001, beta_end=0.02, beta_schedule="scaled_linear", num_train_timesteps=1000,
                         clip_sample=True, prediction_type="epsilon", variance_type="fixed_small")
MAX_NOISE_LEVEL = 350  # the pipeline's largest noise_level


def upscale(sd, image, prompt, negative_prompt="", *, noise_level=20, num_steps=25, guidance_scale=9.0, seed=0,
            output="pil"):
    """A picture (h, w) -> the picture x the VAE's factor (4 for the x4 upscaler), guided by `prompt`.
    noise_level: 0..350, how much noise is added to the picture first (more: the model invents
    more detail and follows the picture less). Other arguments as `generate`.
    Taught in notebooks/09."""
    from diffusers import DDPMScheduler

    low = load_image(image, name="image")
    s = check_generate_args(
        sd, prompt=prompt, negative_prompt=negative_prompt, num_steps=num_steps, guidance_scale=guidance_scale,
        seed=seed, height=low.height * sd.vae_scale, width=low.width * sd.vae_scale, scheduler=None,
        init_image=None, strength=1.0, callback=None, loss_fn=None, loss_scale=0.0, loss_every=1, output=output,
        text_emb=None, uncond_emb=None, control_image=None, conditioning_scale=1.0, depth_map=None, extra=3)
    noise_level = check_int("noise_level", noise_level, lo=0, hi=MAX_NOISE_LEVEL)
    scheduler, g = s["scheduler"], torch.Generator("cpu").manual_seed(seed)
    text_emb, uncond_emb = text_embeddings(sd, s["prompts"], s["negatives"])
    emb = cfg_embeddings(text_emb, uncond_emb, guidance_scale)  # (2B or B, 77, D)
    n = len(text_emb)

    # The picture, noised to noise_level (drawn first, as the pipeline does). (B, 3, h, w) in [-1, 1]
    x_low = to_vae_range(to_tensor([low] * n)).to(sd.device, sd.dtype)
    level = torch.tensor([noise_level], dtype=torch.long, device=sd.device)
    noise = torch.randn(x_low.shape, generator=g, dtype=sd.dtype).to(sd.device)
    x_low = DDPMScheduler(**LOW_RES_SCHEDULER).add_noise(x_low, noise, level)

    # The loop, the UNet reading the noised picture and its noise level at every step.
    scheduler.set_timesteps(num_steps, device=sd.device)
    x_t = torch.randn((n, sd.vae.config.latent_channels, low.height, low.width), generator=g,
                      dtype=sd.dtype).to(sd.device) * scheduler.init_noise_sigma  # (B, 4, h, w)
    steered, extra = with_extra(sd, x_low, class_labels=level), step_kwargs(scheduler, g)
    for t in scheduler.timesteps:
        output_t = guided_output(steered, scheduler, x_t, t, emb, guidance_scale)
        x_t = scheduler.step(output_t, t, x_t, **extra).prev_sample
    return finish(sd, x_t, output, single=isinstance(prompt, str))
