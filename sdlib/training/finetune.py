"""Teaching the model a new concept: textual inversion vs DreamBooth-LoRA, on a laptop CPU.

Both minimise Stable Diffusion's own training loss on a few pictures of the concept; they differ
in what is allowed to learn (taught in notebooks/07):
- textual inversion (Gal et al. 2022): one new row of the token table, D numbers; the model is
  frozen. `train_textual_inversion`, saved as a `{token: (D,)}` file (`save_textual_inversion`).
- DreamBooth-LoRA (Ruiz et al. 2023 with Hu et al. 2022's LoRA): small low-rank updates
  W + (alpha / r) B A on the UNet's attention projections, the diffusers way (peft adapters,
  `save_lora_weights` / `load_lora_weights` files). `add_lora`, `train_dreambooth_lora`,
  `save_lora`, `load_lora`, `remove_lora`, `without_lora`.

Symbols: x0 the concept's latents (B, 4, h, w); t a training timestep; noise ~ N(0, I); c the
prompt's text_emb (B, 77, D); alpha_bar the schedule; r the LoRA rank, alpha its scale.
Every loop draws its images, t and noise from one CPU generator seeded by `seed`, so a run is
repeatable on any device; what learns is kept in fp32 even when the model runs in fp16.
"""
import contextlib
from pathlib import Path

import torch
from safetensors.torch import load_file

from ..models import vae
from ..checks import check_callable, check_int, check_number, check_one_prompt, check_safetensors_file, check_seed
from ..conditioning.embeddings import save_embedding
from .textual_inversion import learn_embedding
from ..errors import SDLibError
from ..models.load import check_sd
from ..sampling.sampler import generate
from .objective import diffusion_loss
from ..models.text import encode_text

LORA_TARGETS = ["to_k", "to_q", "to_v", "to_out.0"]  # diffusers' train_dreambooth_lora.py: the
# query, key, value and output projections of every self- and cross-attention layer
LORA_FILE = "pytorch_lora_weights.safetensors"  # the name diffusers' save_lora_weights writes
ADAPTER = "default"  # peft's name for a model's one adapter
MAX_GRAD_NORM = 1.0  # diffusers' train_dreambooth_lora.py, --max_grad_norm default


# ---------------------------------------------------------------- textual inversion
def train_textual_inversion(sd, images, captions, token, init_word, steps, lr=None,
                            batch_size=4, seed=0, callback=None):
    """Textual inversion (Gal et al. 2022): add `token`, started at `init_word`'s vector, and
    learn its row of the token table so the captions (templates with "{}" where the token goes,
    one per image) describe `images`. Returns (vector (D,) fp32, losses per step).

    Only the token's row learns: the optimiser holds an fp32 copy of that one row and writes it
    back after every step, so no other row can move (diffusers' textual_inversion example trains
    the whole table and restores every other row after each step: the same update, as the other
    rows get no gradient). Re-running starts again from `init_word` (add_token's replace=True).
    lr: None scales it to the table (`embeddings.default_lr`). callback(step, loss): after each
    step. The loop is `sdlib.embeddings.learn_embedding` (notebooks/03, section 6).
    Taught in notebooks/07.
    """
    if not isinstance(token, str):
        raise SDLibError(f"token must be a new word such as '<my-concept>', got {token!r}.")
    return learn_embedding(sd, images, captions, init_word, steps, lr, batch_size, seed,
                           token=token, callback=callback)


def save_textual_inversion(path, token, vector, **metadata):
    """Save a learned vector as `{token: (D,)}` safetensors, diffusers' textual-inversion layout:
    `pipe.load_textual_inversion(path)` and `sdlib.embeddings.load_textual_inversion(sd, path)`
    read it. metadata (steps=, seed=, ...) is stored as strings. Returns the path.
    Taught in notebooks/07."""
    return save_embedding(path, token, vector, **metadata)


# ---------------------------------------------------------------- DreamBooth-LoRA
def _peft():
    """The peft package (LoRA adapters for diffusers models), else SDLibError saying how to
    get it."""
    try:
        import peft
    except ImportError:
        raise SDLibError("LoRA needs the peft package: pip install peft") from None
    return peft


def has_lora(sd):
    """True when sd's UNet carries LoRA adapters (from `add_lora` or `load_lora`).
    Taught in notebooks/07, section 3."""
    return bool(getattr(check_sd(sd).unet, "peft_config", None))


def lora_params(sd):
    """The trainable parameters of sd's UNet: the LoRA matrices A and B, nothing else.
    Taught in notebooks/07, section 3."""
    return [p for p in check_sd(sd).unet.parameters() if p.requires_grad]


def add_lora(sd, rank=4, alpha=None, *, seed=0):
    """Add LoRA adapters to the UNet's attention projections, as diffusers' DreamBooth-LoRA does;
    everything else stays frozen. Returns the number of trainable parameters.

    LoRA (Hu et al. 2022, eq. 3, with the alpha / r scale of their sec. 4.1): each frozen
    W (out, in) of `LORA_TARGETS` computes
        h = W x + (alpha / r) B A x,   A (r, in) ~ N(0, 1/r^2) ("gaussian"), B (out, r) = 0,
    so the model is unchanged until B learns; r (in + out) numbers per layer.
    rank: r; alpha: the scale's numerator (None: r, so the scale is 1, as diffusers' script).
    seed: A's random start. Adapters already there are replaced (a cell can be re-run); the
    adapters are fp32 even on an fp16 model (diffusers' `cast_training_params`).
    Taught in notebooks/07.
    """
    check_sd(sd)
    rank = check_int("rank", rank, lo=1)
    alpha = rank if alpha is None else check_number("alpha", alpha, lo=0, lo_open=True)
    seed = check_seed(seed)
    config = _peft().LoraConfig(r=rank, lora_alpha=alpha, init_lora_weights="gaussian",
                                target_modules=LORA_TARGETS)
    remove_lora(sd)
    sd.unet.requires_grad_(False)
    with torch.random.fork_rng(devices=[]):  # A is drawn on the CPU, from `seed` only
        torch.manual_seed(seed)
        sd.unet.add_adapter(config, adapter_name=ADAPTER)
    for p in lora_params(sd):
        p.data = p.data.float()  # train in fp32 (diffusers.training_utils.cast_training_params)
    return sum(p.numel() for p in lora_params(sd))


def remove_lora(sd):
    """Take every LoRA adapter off the UNet: it is the original model again (nothing was merged).
    Does nothing when there is none. Taught in notebooks/07."""
    if hasattr(check_sd(sd).unet, "peft_config"):  # also an empty one a failed load left behind
        sd.unet.unload_lora()


@contextlib.contextmanager
def without_lora(sd):
    """`with without_lora(sd):` the UNet runs without its LoRA (to compare before/after); the
    adapters are switched back on afterwards. Taught in notebooks/07."""
    on = has_lora(sd)
    if on:
        sd.unet.disable_lora()
    try:
        yield sd
    finally:
        if on:
            sd.unet.enable_lora()


def class_images_for(sd, class_prompt, n, seed=0, **generate_kw):
    """n pictures of the class ("a triangle") from the frozen model (LoRA switched off), for
    DreamBooth's prior preservation: one `sdlib.generate` call with one seed. generate_kw (e.g.
    num_steps=) goes to generate. Returns a list of PIL images. Taught in notebooks/07."""
    check_sd(sd)
    check_one_prompt("class_prompt", class_prompt)
    n = check_int("n", n, lo=1)
    with without_lora(sd):
        return generate(sd, [class_prompt] * n, seed=seed, **generate_kw)


def _latents(sd, name, images):
    """images -> latents (N, 4, h, w), with the argument's name in any error."""
    try:
        return vae.encode(sd, images)
    except SDLibError as e:
        raise SDLibError(f"{name}: {e}") from None


def _check_prior(class_images, class_prompt, prior_weight):
    """Prior preservation needs both class_images and class_prompt, or neither."""
    if (class_images is None) != (class_prompt is None):
        raise SDLibError("class_images and class_prompt go together (prior preservation): give "
                         "both, e.g. class_images_for(sd, 'a triangle', 8), or neither.")
    return check_number("prior_weight", prior_weight, lo=0)


def train_dreambooth_lora(sd, images, prompt, steps, class_images=None, class_prompt=None,
                          prior_weight=1.0, lr=1e-4, batch_size=4, seed=0, callback=None):
    """DreamBooth (Ruiz et al. 2023) with LoRA: train the adapters `add_lora` put on the UNet so
    that `prompt` ("a photo of sks triangle") draws `images`. Returns the loss of every step.

    With class images (from the frozen model, `class_images_for`) the loss keeps the class as it
    was, prior preservation (Ruiz et al. 2023, eq. 2):
        L = || target - UNet(x_t, t, c) ||^2 + lambda || target_pr - UNet(x_pr_t', t', c_pr) ||^2
    x: an instance image's latents with c the prompt; x_pr: a class image's with c_pr the
    class_prompt; lambda: prior_weight. The paper writes each term for an x0-predicting model
    with a weight w_t; here, as in diffusers' script, each is `diffusion_loss` (the model's own
    target) on its own batch of batch_size, with its own t and noise.
    AdamW (lr, weight decay 1e-2) with gradient clipping at 1, as diffusers' script.
    callback(step, loss): after each step. Taught in notebooks/07.
    """
    check_sd(sd)
    if not has_lora(sd):
        raise SDLibError("sd's UNet has no LoRA adapters to train: call "
                         "sdlib.finetune.add_lora(sd) first.")
    check_one_prompt("prompt", prompt)
    steps = check_int("steps", steps, lo=1)
    lr = check_number("lr", lr, lo=0, lo_open=True)
    batch_size = check_int("batch_size", batch_size, lo=1)
    seed = check_seed(seed)
    prior_weight = _check_prior(class_images, class_prompt, prior_weight)
    if callback is not None:
        check_callable("callback", callback, "(step, loss)")
    x0 = _latents(sd, "images", images)  # (N, 4, h, w)
    text_emb = encode_text(sd, prompt)  # (1, 77, D)
    if class_images is not None:
        x0_prior = _latents(sd, "class_images", class_images)  # (M, 4, h, w)
        prior_emb = encode_text(sd, check_one_prompt("class_prompt", class_prompt))  # (1, 77, D)
    params = lora_params(sd)
    opt = torch.optim.AdamW(params, lr=lr)
    g = torch.Generator("cpu").manual_seed(seed)
    losses = []
    for step in range(steps):
        x = _pick(x0, batch_size, g)  # (B, 4, h, w)
        loss = diffusion_loss(sd, x, text_emb, g)  # the instance term
        if class_images is not None:
            x_pr = _pick(x0_prior, batch_size, g)  # (B, 4, h, w)
            loss = loss + prior_weight * diffusion_loss(sd, x_pr, prior_emb, g)  # the prior term
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
        opt.step()
        losses.append(loss.item())
        if callback is not None:
            callback(step=step, loss=losses[-1])
    return losses


def _pick(x0, batch_size, g):
    """batch_size latents drawn (with replacement) from x0 (N, 4, h, w) -> (batch_size, 4, h, w)."""
    return x0[torch.randint(0, len(x0), (batch_size,), generator=g)]


def _check_folder(folder):
    if not isinstance(folder, (str, Path)):
        raise SDLibError(f"folder must be a folder path (str or pathlib.Path), got "
                         f"{type(folder).__name__}.")
    return Path(folder)


def save_lora(sd, folder):
    """Save the UNet's LoRA the diffusers way: `StableDiffusionPipeline.save_lora_weights` writes
    folder/pytorch_lora_weights.safetensors (diffusers' key names, rank and alpha in its metadata),
    which `pipe.load_lora_weights(folder)` and `load_lora` read. Returns the file's path.
    Taught in notebooks/07."""
    check_sd(sd)
    folder = _check_folder(folder)
    if not has_lora(sd):
        raise SDLibError("sd's UNet has no LoRA to save: add_lora and train_dreambooth_lora "
                         "first (or load_lora).")
    if list(sd.unet.peft_config) != [ADAPTER]:
        raise SDLibError(f"save_lora saves the one adapter add_lora or load_lora made "
                         f"({ADAPTER!r}); this UNet has {list(sd.unet.peft_config)}.")
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers

    state = convert_state_dict_to_diffusers(
        _peft().get_peft_model_state_dict(sd.unet, adapter_name=ADAPTER))  # {key: A or B}
    StableDiffusionPipeline.save_lora_weights(
        folder, unet_lora_layers=state, safe_serialization=True,
        unet_lora_adapter_metadata=sd.unet.peft_config[ADAPTER].to_dict())
    return folder / LORA_FILE


def load_lora(sd, folder):
    """Load a LoRA folder (from `save_lora` or diffusers' training scripts) into sd's UNet with
    diffusers' `pipe.load_lora_weights`, in place of any LoRA it has. The LoRA is fp32, as after
    `add_lora`, so training can go on. Taught in notebooks/07."""
    check_sd(sd)
    folder = _check_folder(folder)
    if not (folder / LORA_FILE).is_file():
        raise SDLibError(f"folder must hold a LoRA saved by save_lora ({LORA_FILE}), but "
                         f"{folder} has none.")
    check_safetensors_file(folder / LORA_FILE)
    _peft()
    remove_lora(sd)
    try:
        with _quiet_diffusers():  # not its notes (no text-encoder LoRA: none was trained)
            sd.pipeline().load_lora_weights(str(folder), adapter_name=ADAPTER)
    except Exception as e:  # a LoRA for another model: one line, not diffusers' traceback
        remove_lora(sd)
        lines = [line.strip() for line in str(e).splitlines() if line.strip()] or [type(e).__name__]
        why = next((line for line in lines if "size mismatch" in line), lines[0])
        raise SDLibError(f"cannot load the LoRA in {folder} into {sd.name} (was it trained on "
                         f"another model?): {why}") from None
    for name, p in sd.unet.named_parameters():
        p.requires_grad_("lora_" in name)
    for p in lora_params(sd):
        p.data = p.data.float()  # fp32, as add_lora leaves them
    _set_lora_from_file(sd, folder / LORA_FILE)


def _set_lora_from_file(sd, path):
    """Set the adapters again from the file, in fp32: diffusers' loader rounds them to the model's
    dtype, and an fp16 model should get back exactly what was trained too. Files in save_lora's
    layout only (every key a "unet." one, diffusers' names); others keep diffusers' rounding."""
    from diffusers.utils import convert_unet_state_dict_to_peft

    state = load_file(str(path))  # {"unet.<layer>.lora.down.weight": A, ...}
    if not all(k.startswith("unet.") for k in state):
        return
    state = convert_unet_state_dict_to_peft({k.removeprefix("unet."): v for k, v in state.items()})
    _peft().set_peft_model_state_dict(sd.unet, state, adapter_name=ADAPTER)


@contextlib.contextmanager
def _quiet_diffusers():
    """diffusers' log silent for the duration (what goes wrong is raised, and said once)."""
    from diffusers.utils import logging as dlog

    level = dlog.get_verbosity()
    dlog.set_verbosity(dlog.CRITICAL)
    try:
        yield
    finally:
        dlog.set_verbosity(level)
