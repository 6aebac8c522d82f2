"""The Stable Diffusion loop, by hand: the one sampler every notebook uses.

Taught in notebooks/00_overview (the loop), 02 (img2img), 05 (guidance). `generate` is a short
loop over named stages, each a function a notebook can call and show on its own:

    text_emb, uncond_emb = text_embeddings(sd, prompts, negatives)     # (B, 77, D) each
    x_t, timesteps = initial_latents(sd, scheduler, shape, generator)  # x_T: noise (or a noised image)
    for i, t in enumerate(timesteps):
        output = guided_output(sd, scheduler, x_t, t, emb, guidance_scale)  # eps (or v), after CFG
        x_t = loss_guidance(sd, scheduler, x_t, output, t, loss_fn, loss_scale)  # optional nudge
        x_t = scheduler.step(output, t, x_t).prev_sample                   # x_t -> x_{t-1}

Same seed, components, scheduler and settings -> the same image as diffusers'
StableDiffusionPipeline (and StableDiffusionImg2ImgPipeline for img2img), and for an SD3 bundle
(a transformer instead of the UNet) as StableDiffusion3Pipeline; tests check it.
"""
import copy
import inspect
import os

import torch

from ..models import vae
from ..checks import check_callable, check_choice, check_int, check_number, check_prompts, check_seed
from ..errors import SDLibError
from ..images import load_image, to_pil
from ..models.load import check_sd
from ..processes import (check_same_kind, initial_sigma, noise_to, num_train_timesteps, predict_noise,
                         predict_x0, sampler_sigma)
from ..conditioning.channels import depth_input, extra_channels, with_extra
from ..conditioning.control import control_input, controlled
from .guidance import cfg_embeddings, guided_output, loss_guidance
from .schedulers import first_index, img2img_skip, make_scheduler
from ..models.sd3 import check_joint_text
from ..models.text import check_width, encode_text

OUTPUTS = ("pil", "tensor", "latents")


def generate(sd, prompt, negative_prompt="", *, num_steps=25, guidance_scale=7.5, seed=0,
             height=None, width=None, scheduler=None, init_image=None, strength=0.8,
             callback=None, loss_fn=None, loss_scale=0.0, loss_every=1, output="pil",
             text_emb=None, uncond_emb=None, control_image=None, conditioning_scale=1.0, depth_map=None):
    """Text (and optionally an init image, a control image) -> image(s).

    prompt, negative_prompt: a string, or a list (one image each); the negative prompt stands in
        for the empty prompt in classifier-free guidance.
    guidance_scale: classifier-free guidance; 1 runs the text half only, 0 the uncond half only.
    scheduler: None (the model's), a name ("ddim", "euler", ...) or any diffusers scheduler
        (a fresh copy is used, so it is never left half-stepped).
    init_image, strength: img2img; start from the image noised to `strength` in (0, 1], skip
        the first num_steps - int(num_steps * strength) steps.
    callback(step, t, sigma, x_t, eps, x0_pred): called after the prediction at every step.
    loss_fn(image) -> scalar: gradient guidance on the decoded x0_pred (B, 3, H, W) in [0, 1],
        applied with `loss_scale` every `loss_every` steps (`guidance.loss_guidance_step`).
    output: "pil" (an image, or a list for a list of prompts), "tensor" (B, 3, H, W), "latents".
    text_emb, uncond_emb: (B, 77, D) embeddings to use instead of encoding prompt / negative_prompt
        (for edited or learned embeddings); the prompt may then be None. For SD3 (a transformer
        model), `sdlib.sd3.JointText`s (tokens and pooled vectors, as `encode_text` makes them).
    control_image, conditioning_scale: ControlNet (`sd = sdlib.load_controlnet(sd)` first): the
        map (height x width, in [0, 1]) steers every UNet call, its residuals scaled by
        conditioning_scale >= 0 (`conditioning.control`; notebooks/09).
    depth_map: depth-to-image, for a UNet with one extra input channel: an (H, W) map (larger =
        nearer) or a (B, H, W) batch, resized to latent size and rescaled to [-1, 1] beside the
        latents at every step (`conditioning.channels`; notebooks/09).
    Taught in notebooks/00 (the loop), notebooks/02, sections 7 to 9 (samplers, img2img) and
    notebooks/05 (guidance).
    """
    s = check_generate_args(sd, **{k: v for k, v in locals().items() if k != "sd"})
    scheduler = s["scheduler"]
    g = torch.Generator("cpu").manual_seed(seed)  # CPU noise: the same image on every device
    extra = step_kwargs(scheduler, g)

    # 1. Text: uncond (negative) and cond embeddings, both padded to 77 tokens. (B, 77, D) each
    text_emb, uncond_emb = text_embeddings(sd, s["prompts"], s["negatives"], text_emb, uncond_emb)
    emb = cfg_embeddings(text_emb, uncond_emb, guidance_scale)  # (2B or B, 77, D)

    # 2. Timesteps, and the starting latents x_T (pure noise, or a noised image for img2img).
    shape = (len(text_emb), sd.vae.config.latent_channels, s["height"] // sd.vae_scale,
             s["width"] // sd.vae_scale)  # (B, 4, h, w)
    x_t, timesteps = initial_latents(sd, scheduler, num_steps, shape, g, init_image, strength)
    if control_image is not None:  # ControlNet: the UNet steered by the map at every step (notebooks/09)
        sd = controlled(sd, control_input(sd, control_image, s["height"], s["width"]), conditioning_scale)
    if depth_map is not None:  # depth-to-image: the map as one more input channel (notebooks/09)
        sd = with_extra(sd, depth_input(sd, depth_map, s["height"], s["width"]))

    # 3. The loop: predict (with guidance), nudge on the loss, step.
    for i, t in enumerate(progress(timesteps)):
        output_t = guided_output(sd, scheduler, x_t, t, emb, guidance_scale)  # (B, 4, h, w)
        if loss_fn is not None and loss_scale and i % loss_every == 0:
            x_t = loss_guidance(sd, scheduler, x_t, output_t, t, loss_fn, loss_scale)
        if callback is not None:
            callback(step=i, t=t, sigma=sampler_sigma(scheduler, t), x_t=x_t,
                     eps=predict_noise(scheduler, x_t, output_t, t),
                     x0_pred=predict_x0(scheduler, x_t, output_t, t))
        x_t = scheduler.step(output_t, t, x_t, **extra).prev_sample

    return finish(sd, x_t, output, single=isinstance(prompt, str))


def generate_from_embeddings(sd, text_emb, uncond_emb=None, seed=0, **kw):
    """One image per row of text_emb (B, 77, D), all from the same seed (the same starting noise),
    so differences come from the embeddings alone. uncond_emb: (1, 77, D) or None (the "").
    Taught in notebooks/03, sections 5 and 7."""
    check_sd(sd)
    check_width("text_emb", text_emb, sd.text_encoder)
    if not len(text_emb):
        raise SDLibError("text_emb must hold at least one row (B >= 1), got 0 rows.")
    if uncond_emb is not None and len(check_width("uncond_emb", uncond_emb, sd.text_encoder)) != 1:
        raise SDLibError(f"uncond_emb must be None or one row (1, 77, D) shared by every image, "
                         f"got {len(uncond_emb)} rows.")
    check_seed(seed)
    return [generate(sd, "", text_emb=e[None], uncond_emb=uncond_emb, seed=seed, **kw)
            for e in text_emb]


# ---------------------------------------------------------------- the stages
def text_embeddings(sd, prompts, negatives, text_emb=None, uncond_emb=None):
    """(text_emb, uncond_emb), each (B, 77, D) on the model's device and dtype: the prompts and the
    negative prompts encoded (both padded to 77 tokens, as the pipeline does), unless given.
    A stage of generate; taught in notebooks/00, section 2."""
    text_emb = encode_text(sd, prompts) if text_emb is None else text_emb
    uncond_emb = encode_text(sd, negatives) if uncond_emb is None else uncond_emb
    if len(uncond_emb) == 1 and len(text_emb) > 1:
        uncond_emb = uncond_emb.expand(len(text_emb), -1, -1)  # one negative for the whole batch
    return text_emb.to(sd.device, sd.dtype), uncond_emb.to(sd.device, sd.dtype)


PROGRESS_DELAY = 2.0  # seconds: a run that ends sooner shows no progress bar


def progress(timesteps):
    """The loop's progress bar: tqdm.auto (a widget in notebooks, text in a terminal), shown only
    once a run has lasted PROGRESS_DELAY seconds, so the many short runs stay quiet, and gone
    when the run ends. TQDM_DISABLE=1 turns it off (the tests and the notebook tool set it; read
    here, since tqdm's notebook bar with a delay ignores it: tqdm 4.70).
    Used by generate; the loop is taught in notebooks/00."""
    from tqdm.auto import tqdm

    off = os.environ.get("TQDM_DISABLE", "").lower() not in ("", "0", "false")
    return tqdm(timesteps, desc="sampling", unit="step", delay=PROGRESS_DELAY, leave=False, disable=off)


def initial_latents(sd, scheduler, num_steps, shape, generator, init_image=None, strength=1.0):
    """(x_T, the timesteps to run). txt2img: x_T = noise * init_noise_sigma, all timesteps.
    img2img: the image's latents noised to the first timestep that `strength` keeps (the same
    draw order as StableDiffusionImg2ImgPipeline), and only the timesteps from there on.
    A stage of generate; taught in notebooks/00, section 2 (img2img: notebooks/02, section 8)."""
    scheduler.set_timesteps(num_steps, device=sd.device)
    timesteps = scheduler.timesteps
    if init_image is None:
        noise = torch.randn(shape, generator=generator, dtype=sd.dtype).to(sd.device)
        return noise * initial_sigma(scheduler), timesteps  # (B, 4, h, w)
    timesteps = img2img_timesteps(scheduler, num_steps, strength)
    height, width = shape[-2] * sd.vae_scale, shape[-1] * sd.vae_scale
    image = [load_image(init_image, size=(width, height))] * shape[0]
    x0 = vae.encode(sd, image, sample=True, generator=generator)  # (B, 4, h, w)
    noise = torch.randn(shape, generator=generator, dtype=sd.dtype).to(sd.device)
    return noise_to(scheduler, x0, noise, timesteps[:1].repeat(shape[0])), timesteps


def img2img_timesteps(scheduler, num_steps, strength):
    """The timesteps img2img (and inpainting) run, after `set_timesteps(num_steps)`: the first
    num_steps - int(num_steps * strength) are skipped (`schedulers.img2img_skip`), and the scheduler
    is told where it begins, as the pipelines' `get_timesteps` does.
    Used by generate; img2img is taught in notebooks/02, section 8."""
    t_start, _ = img2img_skip(num_steps, strength)
    first = first_index(scheduler, t_start)  # second-order samplers (Heun) list each step twice
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(first)
    return scheduler.timesteps[first:]


def step_kwargs(scheduler, generator):
    """{"generator": generator} for samplers that draw noise in `step` (DDPM, Euler a), else {}.
    Used by generate; the loop is taught in notebooks/00, section 2."""
    return {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}


def finish(sd, x_t, output, single):
    """Final latents -> what was asked for: latents, an image tensor (B, 3, H, W), or PIL.
    A stage of generate; taught in notebooks/00, section 2."""
    if output == "latents":
        return x_t
    images = vae.decode(sd, x_t)  # (B, 3, H, W) in [0, 1]
    if output == "tensor":
        return images
    pils = to_pil(images)
    return pils[0] if single else pils


# ---------------------------------------------------------------- one clear error per bad input
def check_generate_args(sd, *, prompt, negative_prompt, num_steps, guidance_scale, seed, height,
                        width, scheduler, init_image, strength, callback, loss_fn, loss_scale,
                        loss_every, output, text_emb, uncond_emb, control_image, conditioning_scale,
                        depth_map, extra=None):
    """Check every argument of `generate`; return the normalised ones (prompts, negatives,
    height, width, a fresh scheduler). Raises SDLibError naming the argument and what is allowed.
    extra: the input channels the UNet must read beside the latents (None: 1 with a depth_map, else 0).
    Used by generate; the loop is taught in notebooks/00."""
    check_sd(sd)
    for name, emb in (("text_emb", text_emb), ("uncond_emb", uncond_emb)):
        if emb is not None and sd.transformer is not None:
            check_joint_text(name, emb, sd.transformer)  # SD3: tokens (B, S, J) and pooled (B, P)
        elif emb is not None:
            check_width(name, emb, sd.text_encoder)  # (B, 77, D)
    if text_emb is not None and prompt is None:
        prompt = [""] * len(text_emb)
    prompts = check_prompts("prompt", prompt)
    if text_emb is not None and len(prompts) not in (1, len(text_emb)):
        raise SDLibError(f"prompt has {len(prompts)} entries but text_emb has {len(text_emb)} rows.")
    n = len(text_emb) if text_emb is not None else len(prompts)
    negatives = check_prompts("negative_prompt", negative_prompt)
    if isinstance(negative_prompt, str):
        negatives = negatives * n
    elif len(negatives) != n and uncond_emb is None:
        raise SDLibError(f"negative_prompt has {len(negatives)} entries for {n} prompts; give one "
                         "string, or a list of the same length.")
    if uncond_emb is not None and len(uncond_emb) not in (1, n):
        raise SDLibError(f"uncond_emb has {len(uncond_emb)} rows for {n} prompts; give 1 or {n}.")
    tokens = (lambda e: e.tokens.shape[1]) if sd.transformer is not None else (lambda e: e.shape[1])
    if text_emb is not None and uncond_emb is not None and tokens(text_emb) != tokens(uncond_emb):
        raise SDLibError(f"text_emb and uncond_emb must have the same number of tokens, got "
                         f"{tokens(text_emb)} and {tokens(uncond_emb)}.")
    check_int("num_steps", num_steps, lo=1, hi=num_train_timesteps(sd.scheduler))
    check_number("guidance_scale", guidance_scale)
    check_seed(seed)
    size = {}
    for name, value in (("height", height), ("width", width)):
        value = sd.image_size if value is None else check_int(name, value, lo=sd.vae_scale)
        if value % sd.vae_scale:
            raise SDLibError(f"{name} must be a multiple of {sd.vae_scale} (the VAE's factor), "
                             f"got {value}; try {value // sd.vae_scale * sd.vae_scale}.")
        size[name] = value
    if scheduler is None:
        scheduler = sd.scheduler
    elif isinstance(scheduler, str):
        scheduler = make_scheduler(scheduler, sd.scheduler)
    elif not (hasattr(scheduler, "set_timesteps") and hasattr(scheduler, "step")):
        raise SDLibError(f"scheduler must be None, a name like 'ddim' or 'euler', or a diffusers "
                         f"scheduler, got {type(scheduler).__name__}.")
    check_same_kind("scheduler", scheduler, sd.scheduler)  # a VP sampler on a flow model, or the reverse
    strength = check_number("strength", strength, lo=0, hi=1, lo_open=True)
    if init_image is not None and int(num_steps * strength) < 1:
        raise SDLibError(f"strength {strength:g} with num_steps {num_steps} runs "
                         f"int({num_steps} * {strength:g}) = 0 steps; use strength >= "
                         f"{1 / num_steps:.3g} or more steps.")
    if callback is not None:
        check_callable("callback", callback, "(step, t, sigma, x_t, eps, x0_pred)")
    check_number("loss_scale", loss_scale, lo=0)
    check_int("loss_every", loss_every, lo=1)
    if loss_fn is not None:
        check_callable("loss_fn", loss_fn, "(images (B, 3, H, W) in [0, 1]) -> a scalar")
    elif loss_scale:
        raise SDLibError(f"loss_scale is {loss_scale:g} but loss_fn is None; pass loss_fn= "
                         "(e.g. sdlib.guidance.blue_loss) or leave loss_scale at 0.")
    check_choice("output", output, OUTPUTS)
    check_number("conditioning_scale", conditioning_scale, lo=0)
    if control_image is not None and sd.controlnet is None:
        raise SDLibError("control_image needs a ControlNet beside the model: sd = sdlib.load_controlnet(sd) first.")
    if control_image is None and conditioning_scale != 1.0:
        raise SDLibError(f"conditioning_scale is {conditioning_scale:g} but control_image is None; pass "
                         "control_image= (a map the picture's size) or leave conditioning_scale at 1.")
    extra = (0 if depth_map is None else 1) if extra is None else extra
    if extra_channels(sd) != extra:
        need = {0: "pass depth_map= for a depth model (one extra channel), use sdlib.inpaint for an inpainting "
                   "model (five), sdlib.upscale for the x4 upscaler (three)",
                1: "depth_map needs a depth model (one extra channel)",
                3: "upscale needs the x4 upscaler (three extra channels: the picture)"}[extra]
        raise SDLibError(f"the UNet reads {sd.denoiser.config.in_channels} input channels, the latents "
                         f"{sd.vae.config.latent_channels}: {need}.")
    return dict(prompts=prompts * (n if len(prompts) == 1 and n > 1 else 1), negatives=negatives,
                height=size["height"], width=size["width"], scheduler=copy.deepcopy(scheduler))
