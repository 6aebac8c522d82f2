"""Choosing the device and dtype: cuda > mps > cpu, fp16 on CUDA, fp32 elsewhere.

The device and dtype are chosen once, when the model bundle is loaded, and every helper takes
them from the bundle (`sd.device`, `sd.dtype`), so no notebook hard-codes a device.
"""
import os

import torch

from ..errors import SDLibError

DEVICE_TYPES = ("cpu", "cuda", "mps")  # what sdlib runs on; "cuda:1" picks a GPU
DTYPES = {"fp16": torch.float16, "float16": torch.float16, "fp32": torch.float32,
          "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}


def as_device(device):
    """A `torch.device` from a torch.device or a name ('auto', 'cpu', 'cuda', 'cuda:1', 'mps'),
    checked to be one sdlib runs on (not that it is present here: `pick_device` checks that).
    Used by load_sd; devices are chosen in notebooks/00 (the load cell)."""
    if device is None or (isinstance(device, str) and device.strip().lower() in ("", "auto")):
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if torch.backends.mps.is_available() else "cpu")
    name = str(device) if isinstance(device, (str, torch.device)) else None
    try:
        out = torch.device(name.strip().lower()) if name else None
    except RuntimeError:
        out = None
    if out is None or out.type not in DEVICE_TYPES:
        raise SDLibError(f"unknown device {device!r}: device must be 'auto', "
                         f"{', '.join(map(repr, DEVICE_TYPES))} (or 'cuda:1' for a second GPU).")
    return out


def pick_device(device=None):
    """Return a `torch.device`: the one asked for (checked), else $SDLIB_DEVICE, else the best.
    Used by load_sd; devices are chosen in notebooks/00 (the load cell)."""
    out = as_device(device if device is not None else os.environ.get("SDLIB_DEVICE", "auto"))
    if out.type == "cuda" and not torch.cuda.is_available():
        raise SDLibError(
            f"device {str(out)!r} was asked for but this torch sees no CUDA GPU "
            "(torch.cuda.is_available() is False); use device='cpu' or 'auto'.")
    if out.type == "mps" and not torch.backends.mps.is_available():
        raise SDLibError("device 'mps' was asked for but is not available; use 'cpu' or 'auto'.")
    return out


def pick_dtype(device, dtype=None):
    """fp16 on CUDA (half the memory, same pictures), fp32 elsewhere (CPUs are slow in fp16).
    Used by load_sd; dtypes are chosen in notebooks/00 (the load cell)."""
    device = as_device(device)
    if dtype is None:
        return torch.float16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, str):
        dtype = DTYPES.get(dtype.strip().lower(), dtype)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise SDLibError(f"unknown dtype {dtype!r}: dtype must be None (automatic), 'fp16', "
                         "'fp32', 'bf16' or a torch float dtype such as torch.float16.")
    return dtype
