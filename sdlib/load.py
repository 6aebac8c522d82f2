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

from . import builtin
from .checks import check_number
from .device import as_device, pick_device, pick_dtype
from .errors import SDLibError

SD_V1 = "CompVis/stable-diffusion-v1-4"
COMPONENTS = ("tokenizer", "text_encoder", "vae", "unet", "scheduler")
HUB_HOST = ("huggingface.co", 443)


def ready_line(sd):
    """One line that says what a notebook runs on: "ready: sdlib X, torch Y, device Z, model M".
    Printed by every notebook's load cell, so a learner (and a bug report) sees the set-up."""
    from importlib.metadata import version

    return (f"ready: sdlib {version('sdlib')}, torch {torch.__version__}, "
            f"device {check_sd(sd).device.type}, model {sd.name}")


def n_params(module):
    """Number of parameters of a torch module."""
    if not isinstance(module, torch.nn.Module):
        raise SDLibError(f"module must be a torch module such as sd.unet, got {type(module).__name__}.")
    return sum(p.numel() for p in module.parameters())


@dataclass
class SD:
    """The five components of Stable Diffusion, with the device and dtype they live on."""

    tokenizer: object
    text_encoder: torch.nn.Module
    vae: torch.nn.Module
    unet: torch.nn.Module
    scheduler: object
    device: torch.device
    dtype: torch.dtype
    name: str

    @property
    def vae_scale(self):
        """Pixels per latent cell along one side (8 for SD)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def image_size(self):
        """The image size the UNet was trained at (512 for SD v1, 64 for the built-in model)."""
        return self.unet.config.sample_size * self.vae_scale

    def pipeline(self, scheduler=None):
        """diffusers' StableDiffusionPipeline made from these very components."""
        from diffusers import StableDiffusionPipeline

        if scheduler is not None and not (hasattr(scheduler, "set_timesteps")
                                          and hasattr(scheduler, "step")):
            raise SDLibError(f"scheduler must be None (this bundle's) or a diffusers scheduler, "
                             f"got {type(scheduler).__name__}.")
        return StableDiffusionPipeline(
            vae=self.vae, text_encoder=self.text_encoder, tokenizer=self.tokenizer,
            unet=self.unet, scheduler=scheduler or self.scheduler, safety_checker=None,
            feature_extractor=None, requires_safety_checker=False)

    def __repr__(self):
        def n(m):
            return n_params(m) / 1e6
        dtype = str(self.dtype).removeprefix("torch.")
        return (f"SD({self.name!r}, device={self.device.type}, dtype={dtype}, "
                f"{self.image_size}px, unet {n(self.unet):.2f}M, vae {n(self.vae):.2f}M, "
                f"text encoder {n(self.text_encoder):.2f}M params, "
                f"scheduler {type(self.scheduler).__name__})")


def check_sd(sd):
    """`sd` as the bundle `load_sd` returns, else SDLibError (a pipeline or one part is the
    usual slip); every helper that takes `sd` calls this first."""
    if not isinstance(sd, SD):
        raise SDLibError(f"sd must be the model bundle from sdlib.load_sd() (tokenizer, text "
                         f"encoder, VAE, UNet, scheduler), got {type(sd).__name__}.")
    return sd


def default_model(device):
    """$SDLIB_MODEL, else SD v1.4 on CUDA, else the built-in model."""
    on_cuda = as_device(device).type == "cuda"
    return os.environ.get("SDLIB_MODEL") or (SD_V1 if on_cuda else builtin.NAME)


def hub_reachable(timeout=3.0):
    """True if the Hugging Face hub answers (and offline mode is not set)."""
    timeout = check_number("timeout", timeout, lo=0, lo_open=True)
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    try:
        socket.create_connection(HUB_HOST, timeout=timeout).close()
        return True
    except OSError:
        return False


def check_layout(folder):
    """Raise unless `folder` holds the five SD components in the diffusers layout."""
    if not isinstance(folder, (str, os.PathLike)):
        raise SDLibError(f"folder must be a path (str or pathlib.Path), got {type(folder).__name__}.")
    folder = Path(folder)
    missing = [c for c in COMPONENTS if not (folder / c).is_dir()]
    if missing:
        raise SDLibError(
            f"{folder} is not a Stable Diffusion folder in the diffusers layout: missing "
            f"{', '.join(missing)}/ (expected subfolders {', '.join(COMPONENTS)}).")


def _from_pretrained(source, local_only, dtype):
    """The five from_pretrained calls, quiet (no progress bars for a few small files, and not
    huggingface_hub's deprecation note about an argument diffusers still passes)."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    was_on = tlog.is_progress_bar_enabled()
    tlog.disable_progress_bar()
    dlog.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*local_dir_use_symlinks.*")
            return _load_parts(source, local_only, dtype)
    finally:
        if was_on:
            tlog.enable_progress_bar()
            dlog.enable_progress_bar()


def _load_parts(source, local_only, dtype):
    import diffusers
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.schedulers import PNDMScheduler
    from transformers import CLIPTextModel, CLIPTokenizer

    kw = dict(local_files_only=local_only)
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


def load_sd(model=None, device=None, dtype=None):
    """Load tokenizer, text encoder, VAE, UNet and scheduler into an `SD` bundle.

    model: None (the default, see module doc), "builtin", a hub id, or a local folder.
    device: None/"auto" (cuda > mps > cpu, or $SDLIB_DEVICE), "cpu", "cuda", "mps".
    dtype: None (fp16 on CUDA, fp32 elsewhere) or a torch dtype / "fp16" / "fp32".
    """
    if model is not None and not isinstance(model, (str, os.PathLike)):
        raise SDLibError(f"model must be None, 'builtin', a hub id like {SD_V1!r} or a folder "
                         f"path, got {type(model).__name__}.")
    device = pick_device(device)
    dtype = pick_dtype(device, dtype)
    explicit = model is not None or bool(os.environ.get("SDLIB_MODEL"))
    name = str(model) if model is not None else default_model(device)
    if name == builtin.NAME:
        source, local_only = builtin.builtin_path(), True
    elif Path(name).expanduser().exists():
        source, local_only = Path(name).expanduser(), True
        check_layout(source)
    else:
        source, local_only = _hub_source(name, explicit)
        if source is None:  # default SD on CUDA but no hub: fall back, and say so
            return load_sd(builtin.NAME, device, dtype)
    try:
        parts = _from_pretrained(str(source), local_only, dtype)
    except SDLibError:
        raise
    except Exception as e:  # turn hub/cache failures into one line
        raise _explain(name, local_only, e) from None
    for m in (parts["text_encoder"], parts["vae"], parts["unet"]):
        m.to(device).eval().requires_grad_(False)
    return SD(device=device, dtype=dtype, name=name, **parts)


def _hub_source(name, explicit):
    """Validate a hub id; decide whether to go online or use the local cache only."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        raise SDLibError(
            f"unknown model {name!r}: not 'builtin', not an existing folder, and not a valid "
            "hub id like 'CompVis/stable-diffusion-v1-4'.") from None
    if hub_reachable():
        return name, False
    if not explicit:
        warnings.warn(f"the hub is not reachable, so the built-in model is used instead of "
                      f"{name}; set SDLIB_MODEL to choose.", stacklevel=3)
        return None, True
    return name, True  # offline: the local cache may still hold it


def _explain(name, local_only, err):
    text = f"{type(err).__name__}: {err}"
    if local_only and not Path(name).exists():
        return SDLibError(
            f"cannot load {name!r}: the Hugging Face hub is not reachable and it is not in the "
            "local cache. Use the built-in model instead: sdlib.load_sd('builtin') or "
            "SDLIB_MODEL=builtin.")
    if "RepositoryNotFound" in text or "404" in text:
        return SDLibError(f"unknown model id {name!r}: the hub has no such repository "
                          "(or it is private/gated: log in with `hf auth login`).")
    if "safetensors" in text.lower():
        return SDLibError(f"{name!r} has no safetensors weights; sdlib loads safetensors only.")
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return SDLibError(f"cannot load {name!r}: {first}")
