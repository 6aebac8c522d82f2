"""Inpainting by hand: repaint the white part of a mask and keep the rest of the image.

Taught in notebooks/06_inpainting. No new model: an ordinary text-to-image UNet (4 latent
channels in) samples as usual, and after every step the part of the latents we want to keep is
overwritten with the original image's latents, noised to the level the sampler has reached:

    m = latent_mask(sd, mask)                          # (1, 1, h, w): 1 = repaint, 0 = keep
    x_t, timesteps, x0_known, noise = start_latents(sd, scheduler, num_steps, shape, g, image)
    for i, t in enumerate(timesteps):
        output = guided_output(sd, scheduler, x_t, t, emb, guidance_scale)  # eps (or v), after CFG
        x_t = scheduler.step(output, t, x_t).prev_sample       # x_t -> x_{t-1}, everywhere
        x_t = blend(x_t, x0_known, noise, m, scheduler, t_next)  # kept part: the image at t_next

This is what diffusers' StableDiffusionInpaintPipeline does for a 4-channel UNet (its
`unet.config.in_channels == 4` branch); same seed, components and settings give the same pixels
(tests/test_inpaint.py). Dedicated inpainting checkpoints (9 channels in: latents, mask, masked
image) are a different, trained method and are not handled here.
"""
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..models import vae
from ..checks import check_callable, shape_or_type
from ..errors import SDLibError
from ..images import load_image
from ..models.load import check_sd
from .guidance import cfg_embeddings, guided_output
from .sampler import check_generate_args, finish, img2img_timesteps, step_kwargs, text_embeddings
from ..processes import noise_to, predict_x0

MASK_THRESHOLD = 0.5  # mask values >= this are repainted (diffusers' VaeImageProcessor.binarize)
MASK_ACCEPTED = ("a PIL image (white = repaint), an array (H, W) (bool, uint8 0..255 or float in "
                 "[0, 1]) or a tensor (H, W) / (B, H, W) / (B, 1, H, W) (bool or float in [0, 1])")


# ---------------------------------------------------------------- the mask
def pixel_mask(mask):
    """The mask as the pipeline's `mask_processor` makes it: (B, 1, H, W) float32 of 0s and 1s,
    1 (white) = repaint, 0 (black) = keep; values >= 0.5 count as white (`MASK_THRESHOLD`).

    mask: a PIL image (any mode; made grey with .convert("L"), then / 255), an array (H, W)
    (uint8 is read as 0..255, like a PIL image; bool and float as they are) or a tensor (H, W),
    (B, H, W) or (B, 1, H, W). Taught in notebooks/06, section 1.
    """
    m = _mask_tensor(mask)  # (B, 1, H, W) float32, values checked to lie in [0, 1]
    return (m >= MASK_THRESHOLD).float()


def latent_mask(sd, mask):
    """Pixel mask -> latent mask (B, 1, H/8, W/8) on the model's device and dtype, exactly as the
    pipeline's `prepare_mask_latents` makes it: `pixel_mask`, then nearest-neighbour downsampling
    (F.interpolate's default mode), so each latent cell takes the value of its top-left pixel.

    One latent cell covers 8x8 pixels (`sd.vae_scale`): a mask edge that is not on that grid moves
    to it. Taught in notebooks/06, section 1.
    """
    check_sd(sd)
    m = pixel_mask(mask)  # (B, 1, H, W)
    height, width = m.shape[-2:]
    if height % sd.vae_scale or width % sd.vae_scale:
        raise SDLibError(f"mask is {width}x{height} but needs sides that are multiples of "
                         f"{sd.vae_scale} (one latent cell covers {sd.vae_scale}x{sd.vae_scale} "
                         "pixels), like the image it belongs to.")
    size = (height // sd.vae_scale, width // sd.vae_scale)
    return F.interpolate(m, size=size).to(sd.device, sd.dtype)  # (B, 1, H, W) -> (B, 1, h, w)


def _mask_tensor(mask):
    """Any accepted mask -> (B, 1, H, W) float32 on the CPU, values in [0, 1], or SDLibError."""
    if isinstance(mask, Image.Image):
        mask = np.asarray(mask.convert("L"))  # (H, W) uint8, as the pipeline's convert_to_grayscale
    if isinstance(mask, np.ndarray):
        if mask.ndim != 2:
            hint = "; for a colour picture use mask[..., 0]." if mask.ndim == 3 else "."
            raise SDLibError(f"mask must be {MASK_ACCEPTED}; got an array of shape {mask.shape}{hint}")
        if mask.dtype.kind not in "biuf":
            raise SDLibError(f"mask must hold numbers, got an array of dtype {mask.dtype}.")
        scale = 255.0 if mask.dtype == np.uint8 else 1.0
        mask = torch.from_numpy(mask.astype(np.float32) / scale)
    if not isinstance(mask, torch.Tensor):
        raise SDLibError(f"mask must be {MASK_ACCEPTED}; got {type(mask).__name__}.")
    m = mask.detach().cpu().float()
    if m.ndim == 2:
        m = m[None, None]  # (H, W) -> (1, 1, H, W)
    elif m.ndim == 3:
        m = m[:, None]  # (B, H, W) -> (B, 1, H, W), as the pipeline reads a 3-D mask
    if m.ndim != 4 or m.shape[1] != 1 or m.numel() == 0:
        raise SDLibError(f"mask must be {MASK_ACCEPTED}; got a tensor of shape "
                         f"{tuple(mask.shape)}.")
    lo, hi = float(m.min()), float(m.max())
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0 or hi > 1:
        hint = "; divide 0..255 values by 255" if hi > 1 else ""
        raise SDLibError(f"mask must hold values in [0, 1] (1 = repaint), got values in "
                         f"[{lo:.3g}, {hi:.3g}]{hint}.")
    return m


# ---------------------------------------------------------------- the stages
def start_latents(sd, scheduler, num_steps, shape, generator, image, strength=1.0):
    """(x_t to start from, the timesteps to run, x0_known, noise), in the pipeline's order of
    random draws: the image's latents x0_known are a *sample* of the VAE posterior (drawn with
    the generator), then one noise tensor (B, 4, h, w) that serves twice: to start, and to noise
    the kept region at every step (`blend`).

    strength 1: x_T = noise * init_noise_sigma, pure noise everywhere; the image enters only
    through the blend. strength < 1: x_T = the image noised to the first timestep kept
    (SDEdit, Meng et al. 2022, as img2img), so the repainted part starts from the image too.
    Taught in notebooks/06, section 2.
    """
    scheduler.set_timesteps(num_steps, device=sd.device)
    timesteps = img2img_timesteps(scheduler, num_steps, strength)  # all of them at strength 1
    x0_known = vae.encode(sd, [image], sample=True, generator=generator)  # (1, 4, h, w)
    x0_known = x0_known.repeat(shape[0], 1, 1, 1)  # (B, 4, h, w): one image for every prompt
    noise = torch.randn(shape, generator=generator, dtype=sd.dtype).to(sd.device)  # (B, 4, h, w)
    if strength == 1:
        return noise * scheduler.init_noise_sigma, timesteps, x0_known, noise
    x_t = noise_to(scheduler, x0_known, noise, timesteps[:1].repeat(shape[0]))  # (B, 4, h, w)
    return x_t, timesteps, x0_known, noise


def blend(x_t, x0_known, noise, latent_mask, scheduler, t_next):
    """One inpainting step's replacement: keep the sampler's latents where the mask is 1 (repaint),
    put the image's latents noised to the next noise level where it is 0 (keep).

    RePaint (Lugmayr et al. 2022, "RePaint: Inpainting using denoising diffusion probabilistic
    models", eq. 8), with m = 1 - latent_mask marking the known part:
        x_{t-1}^known   = sqrt(alpha_bar) x0 + sqrt(1 - alpha_bar) noise,  a draw of q(x_{t-1} | x0)
                          (DDPM eq. 4, alpha_bar at t_next)
        x_{t-1}^unknown = the sampler's step from x_t
        x_{t-1} = m * x_{t-1}^known + (1 - m) * x_{t-1}^unknown
    done on latents as in Blended Latent Diffusion (Avrahami et al. 2023). As diffusers'
    StableDiffusionInpaintPipeline does it (and unlike RePaint), the *same* `noise` is used at
    every step (the one x_T was drawn from), there is no resampling (no jumps back), and after
    the last step (t_next None) the kept part is the clean x0_known.

    The forward process is `scheduler.add_noise`, the pipeline's call: DDPM eq. 4 for VP samplers
    (what `processes.vp.add_noise_vp` writes out), x0 + sigma * noise for VE ones (LMS, Euler).
    Shapes: x_t, x0_known, noise (B, 4, h, w); latent_mask (B or 1, 1, h, w); t_next the
    timestep the step just moved to (timesteps[i + 1]) or None. Taught in notebooks/06, section 3.
    """
    for name, z in (("x_t", x_t), ("x0_known", x0_known), ("noise", noise)):
        vae.check_latents(name, z)
    if x0_known.shape != x_t.shape or noise.shape != x_t.shape:
        raise SDLibError(f"x_t, x0_known and noise must have one shape, got {tuple(x_t.shape)}, "
                         f"{tuple(x0_known.shape)} and {tuple(noise.shape)}.")
    _check_latent_mask(latent_mask, x_t)
    known = x0_known
    if t_next is not None:
        known = noise_to(scheduler, x0_known, noise, torch.as_tensor(t_next).reshape(1))
    return (1 - latent_mask) * known + latent_mask * x_t  # (B, 4, h, w)


def _check_latent_mask(m, x_t):
    if not isinstance(m, torch.Tensor) or m.ndim != 4 or m.shape[1] != 1 \
            or m.shape[0] not in (1, len(x_t)) or m.shape[-2:] != x_t.shape[-2:]:
        got = shape_or_type(m)
        raise SDLibError(f"latent_mask must be a tensor (1 or {len(x_t)}, 1, {x_t.shape[-2]}, "
                         f"{x_t.shape[-1]}) like the latents (make it with sdlib.inpaint."
                         f"latent_mask(sd, mask)), got {got}.")


# ---------------------------------------------------------------- the loop
def inpaint(sd, image, mask, prompt, negative_prompt="", num_steps=50, guidance_scale=7.5, seed=0,
            strength=1.0, callback=None, output="pil", *, scheduler=None):
    """Repaint the white part of `mask` in `image` from `prompt`; keep the black part.

    image: a path, PIL image, array or tensor (`load_image`), sides multiples of 8; its size is
        the output's size. mask: the same size (`pixel_mask` says what it accepts).
    prompt, negative_prompt, num_steps, guidance_scale, seed, scheduler, output: as `generate`.
    strength in (0, 1]: 1 starts the repainted part from pure noise; less starts it from the
        image noised to that level and runs only int(num_steps * strength) steps.
    callback(step=, t=, x_t=, x0_pred=): called by keyword, as `generate` calls its own, after
        the prediction at every step, with the latents the UNet saw at t (from step 1 on, the
        previous step's blend) and its x0 estimate.
    The kept part of the result is the decoded image latents, not the original pixels pasted
    back: the VAE round trip (and its reach across the mask edge) shows there, as in the pipeline.
    Taught in notebooks/06, section 3 (after the loop is written by hand).
    """
    s, image, m = check_inpaint_args(sd, **{k: v for k, v in locals().items() if k != "sd"})
    scheduler = s["scheduler"]
    g = torch.Generator("cpu").manual_seed(seed)  # CPU noise: the same image on every device
    extra = step_kwargs(scheduler, g)

    # 1. Text: uncond (negative) and cond embeddings, both padded to 77 tokens. (B, 77, D) each
    text_emb, uncond_emb = text_embeddings(sd, s["prompts"], s["negatives"])
    emb = cfg_embeddings(text_emb, uncond_emb, guidance_scale)  # (2B or B, 77, D)

    # 2. Start: the image's latents, the noise, x_T; then the latent mask.
    shape = (len(text_emb), sd.vae.config.latent_channels, image.height // sd.vae_scale,
             image.width // sd.vae_scale)  # (B, 4, h, w)
    x_t, timesteps, x0_known, noise = start_latents(sd, scheduler, num_steps, shape, g, image,
                                                    strength)
    skip_masked_image_draw(sd, g, shape, len(m))
    m = latent_mask(sd, m)  # (1 or B, 1, h, w)

    # 3. The loop: predict (with guidance), step everywhere, put the kept part back.
    for i, t in enumerate(timesteps):
        output_t = guided_output(sd, scheduler, x_t, t, emb, guidance_scale)  # (B, 4, h, w)
        if callback is not None:
            callback(step=i, t=t, x_t=x_t, x0_pred=predict_x0(scheduler, x_t, output_t, t))
        x_t = scheduler.step(output_t, t, x_t, **extra).prev_sample  # x_t -> x_{t-1}
        t_next = timesteps[i + 1] if i + 1 < len(timesteps) else None
        x_t = blend(x_t, x0_known, noise, m, scheduler, t_next)

    return finish(sd, x_t, output, single=isinstance(prompt, str))


def skip_masked_image_draw(sd, generator, shape, n_masks):
    """Advance the generator past the pipeline's one unused draw, so that samplers which draw in
    `step` (DDPM, Euler a) stay in step with it. The pipeline also VAE-encodes the masked image
    (the extra input of 9-channel inpainting UNets, unused by a 4-channel one), sampling its
    posterior: one normal draw of shape (n_masks, 4, h, w).
    Used by inpaint; the loop is taught in notebooks/06, section 3."""
    torch.randn((n_masks, *shape[1:]), generator=generator, dtype=sd.dtype)


# ---------------------------------------------------------------- one clear error per bad input
def check_inpaint_args(sd, *, image, mask, prompt, negative_prompt, num_steps, guidance_scale,
                       seed, strength, callback, output, scheduler):
    """Check every argument of `inpaint`; return (generate's normalised arguments, the image as
    RGB PIL, the pixel mask (1 or B, 1, H, W)). Raises SDLibError naming the argument.
    Used by inpaint; taught in notebooks/06, section 3."""
    check_sd(sd)
    channels = sd.vae.config.latent_channels
    if sd.denoiser.config.in_channels != channels:
        raise SDLibError(f"inpaint blends latents for a UNet that takes the {channels} latent "
                         f"channels (SD v1/v2 text-to-image); this UNet takes "
                         f"{sd.denoiser.config.in_channels} (a dedicated inpainting checkpoint): use "
                         "diffusers' StableDiffusionInpaintPipeline for it.")
    image = load_image(image, name="image")
    vae.check_size(image.height, image.width, multiple=sd.vae_scale)
    s = check_generate_args(
        sd, prompt=prompt, negative_prompt=negative_prompt, num_steps=num_steps,
        guidance_scale=guidance_scale, seed=seed, height=image.height, width=image.width,
        scheduler=scheduler, init_image=image, strength=strength, callback=None, loss_fn=None,
        loss_scale=0.0, loss_every=1, output=output, text_emb=None, uncond_emb=None, control_image=None,
        conditioning_scale=1.0, depth_map=None)
    m = pixel_mask(mask)  # (B, 1, H, W)
    if m.shape[-2:] != (image.height, image.width):
        raise SDLibError(f"mask is {m.shape[-1]}x{m.shape[-2]} but image is {image.width}x"
                         f"{image.height}; they must be one size (draw the mask on the image).")
    if len(m) not in (1, len(s["prompts"])):
        n = len(s["prompts"])
        raise SDLibError(f"mask holds {len(m)} masks for {n} prompt{'s' * (n != 1)}; give one "
                         "mask, or one per prompt.")
    if callback is not None:
        check_callable("callback", callback, "(step, t, x_t, x0_pred)")
    return s, image, m
