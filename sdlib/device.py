"""Choosing the device and dtype: cuda > mps > cpu, fp16 on CUDA, fp32 elsewhere.

The device and dtype are chosen once, when the model bundle is loaded, and every helper takes
them from the bundle (`sd.device`, `sd.dtype`), so no notebook hard-codes a device.
"""
import os

import torch

from .errors import SDLibError


def pick_device(device=None):
    """Return a `torch.device`: the one asked for (checked), else $SDLIB_DEVICE, else the best."""
    name = device if device is not None else os.environ.get("SDLIB_DEVICE", "auto")
    name = str(name).strip().lower() or "auto"
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SDLibError(
            f"device {name!r} was asked for but this torch sees no CUDA GPU "
            "(torch.cuda.is_available() is False); use device='cpu' or 'auto'."
        )
    if name == "mps" and not torch.backends.mps.is_available():
        raise SDLibError("device 'mps' was asked for but is not available; use 'cpu' or 'auto'.")
    try:
        return torch.device(name)
    except RuntimeError:
        raise SDLibError(f"unknown device {name!r}; use 'auto', 'cpu', 'cuda' or 'mps'.") from None


def pick_dtype(device, dtype=None):
    """fp16 on CUDA (half the memory, same pictures), fp32 elsewhere (CPUs are slow in fp16)."""
    if dtype is not None:
        if isinstance(dtype, str):
            dtype = {"fp16": torch.float16, "float16": torch.float16, "fp32": torch.float32,
                     "float32": torch.float32, "bf16": torch.bfloat16,
                     "bfloat16": torch.bfloat16}.get(dtype.lower(), dtype)
        if not isinstance(dtype, torch.dtype):
            raise SDLibError(f"unknown dtype {dtype!r}; use 'fp16', 'fp32' or 'bf16'.")
        return dtype
    return torch.float16 if torch.device(device).type == "cuda" else torch.float32
