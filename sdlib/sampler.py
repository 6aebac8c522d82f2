"""The Stable Diffusion loop, by hand: the one sampler every notebook uses.

Same seed, components, scheduler and settings -> the same image as diffusers'
StableDiffusionPipeline (and StableDiffusionImg2ImgPipeline for img2img); tests check it.
Read it with `sdlib.generate??`.
"""
import copy
import inspect

import torch

from . import latents as vae_helpers
from .images import load_image, to_pil
from .schedule import current_sigma, img2img_start, predict_x0
from .text import encode_text


def generate(sd, prompt, negative_prompt="", *, num_steps=25, guidance_scale=7.5, seed=0,
             height=None, width=None, scheduler=None, init_image=None, strength=0.8,
             callback=None, loss_fn=None, loss_scale=0.0, loss_every=1, output="pil",
             text_emb=None, uncond_emb=None):
    """Text (and optionally an init image) -> image(s).

    guidance_scale: classifier-free guidance; 1 runs the text half only, 0 the uncond half only.
    scheduler: any diffusers scheduler (a fresh copy is used, so it is never left half-stepped).
    init_image, strength: img2img; start from the image noised to `strength`, skip early steps.
    callback(step, t, sigma, x_t, eps, x0_pred): called after the prediction at every step.
    loss_fn(image) -> scalar: gradient guidance on the decoded x0_pred (B, 3, H, W) in [0, 1],
        applied with `loss_scale` every `loss_every` steps.
    output: "pil" (an image, or a list for a list of prompts), "tensor" (B, 3, H, W), "latents".
    text_emb, uncond_emb: (B, 77, D) embeddings to use instead of encoding prompt / negative_prompt
        (for edited or learned embeddings); the prompt then only sets the batch size if needed.
    """
    if text_emb is not None:
        prompt = prompt if prompt is not None else [""] * len(text_emb)
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    negatives = [negative_prompt] * len(prompts) if isinstance(negative_prompt, str) else negative_prompt
    height, width = height or sd.image_size, width or sd.image_size
    vae_helpers.check_size(height, width, multiple=sd.vae_scale)
    scheduler = copy.deepcopy(scheduler or sd.scheduler)
    g = torch.Generator("cpu").manual_seed(seed)  # CPU noise: the same image on every device
    step_kwargs = {"generator": g} if "generator" in inspect.signature(scheduler.step).parameters else {}

    # 1. Text: uncond (negative) and cond embeddings, both padded to 77 tokens. (2B, 77, D)
    text_emb = (encode_text(sd, prompts) if text_emb is None else text_emb).to(sd.device, sd.dtype)
    uncond_emb = (encode_text(sd, negatives) if uncond_emb is None else uncond_emb).to(sd.device, sd.dtype)
    cfg = guidance_scale not in (0, 1)
    emb = torch.cat([uncond_emb, text_emb]) if cfg else (uncond_emb if guidance_scale == 0 else text_emb)

    # 2. Timesteps, and the starting latents x_T (pure noise, or a noised image for img2img).
    scheduler.set_timesteps(num_steps, device=sd.device)
    timesteps = scheduler.timesteps
    shape = (len(text_emb), sd.unet.config.in_channels, height // sd.vae_scale, width // sd.vae_scale)
    if init_image is None:
        x_t = torch.randn(shape, generator=g, dtype=sd.dtype).to(sd.device) * scheduler.init_noise_sigma
    else:
        t_start, _ = img2img_start(num_steps, strength)
        timesteps = timesteps[t_start * scheduler.order:]
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(t_start * scheduler.order)
        image = [load_image(init_image, size=(width, height))] * len(prompts)
        x0 = vae_helpers.encode(sd, image, sample=True, generator=g)  # (B, 4, h, w)
        noise = torch.randn(shape, generator=g, dtype=sd.dtype).to(sd.device)
        x_t = scheduler.add_noise(x0, noise, timesteps[:1].repeat(len(prompts)))

    # 3. The loop: predict the noise, guide, step.
    for i, t in enumerate(timesteps):
        x_in = torch.cat([x_t] * 2) if cfg else x_t
        x_in = scheduler.scale_model_input(x_in, t)
        with torch.no_grad():
            eps = sd.unet(x_in, t, encoder_hidden_states=emb).sample  # (B or 2B, 4, h, w)
        if cfg:
            eps_uncond, eps_text = eps.chunk(2)
            eps = eps_uncond + guidance_scale * (eps_text - eps_uncond)  # classifier-free guidance
        sigma = current_sigma(scheduler, t)
        if loss_fn is not None and loss_scale and i % loss_every == 0:
            x_t = x_t.detach().requires_grad_()
            image = vae_helpers.decode(sd, predict_x0(scheduler, x_t, eps, t), grad=True)
            loss = loss_fn(image) * loss_scale
            grad = torch.autograd.grad(loss, x_t)[0]
            x_t = (x_t - grad * sigma**2).detach()  # nudge x_t downhill on the loss
        if callback is not None:
            callback(step=i, t=t, sigma=sigma, x_t=x_t, eps=eps,
                     x0_pred=predict_x0(scheduler, x_t, eps, t))
        x_t = scheduler.step(eps, t, x_t, **step_kwargs).prev_sample

    if output == "latents":
        return x_t
    images = vae_helpers.decode(sd, x_t)  # (B, 3, H, W) in [0, 1]
    if output == "tensor":
        return images
    pils = to_pil(images)
    return pils[0] if isinstance(prompt, str) else pils
