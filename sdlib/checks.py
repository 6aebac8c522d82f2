"""Argument checks that answer a learner's mistake with one line, before torch sees it.

Every public function checks what it is given with these, so a bad value ends in one
`SDLibError` that names the argument, says what was given and what is allowed, instead of a
traceback from deep inside torch or diffusers (or, worse, a silently wrong picture).

    check_int("num_steps", num_steps, lo=1, hi=1000)
    check_number("strength", strength, lo=0, hi=1, lo_open=True)
    check_choice("output", output, ("pil", "tensor", "latents"))
"""
import json
import math
import numbers
from pathlib import Path

import torch

from .errors import SDLibError

MAX_SEED = 2**64 - 1  # torch.Generator.manual_seed takes an unsigned 64-bit seed


def shape_or_type(x):
    """What was given, for an error message: a tensor's shape (1, 77, 64), else its type's name.
    Used by every helper's argument checks; such an error is shown in notebooks/01, section 2."""
    return tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__


def describe(x):
    """What was given, with the dtype: '(1, 77, 65) float32' for a tensor, else its type's name.
    Used by every helper's argument checks; such an error is shown in notebooks/01, section 2."""
    if isinstance(x, torch.Tensor):
        return f"{tuple(x.shape)} {str(x.dtype).removeprefix('torch.')}"
    return type(x).__name__


def check_seed(seed, name="seed"):
    """A seed for torch.Generator.manual_seed: a whole number from 0 to MAX_SEED (2**64 - 1).
    Used by every helper that takes a seed; seeds are taught in notebooks/00, section 2."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed <= MAX_SEED:
        raise SDLibError(f"{name} must be a whole number from 0 to 2**64 - 1, got {_show(seed)}.")
    return int(seed)


def check_one_prompt(name, prompt):
    """One prompt (a string), else SDLibError: for helpers that take exactly one.
    Used by the helpers that take one prompt; prompts are taught in notebooks/03, section 1."""
    if not isinstance(prompt, str):
        raise SDLibError(f"{name} must be one prompt (a string), got {type(prompt).__name__}.")
    return prompt


def _show(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_int(name, value, lo=None, hi=None):
    """An int (not a bool, not a float) in [lo, hi]; returns it.
    Used by every helper's argument checks; such an error is shown in notebooks/01, section 2."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise SDLibError(f"{name} must be a whole number{_range(lo, hi)}, got {_show(value)}.")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise SDLibError(f"{name} must be a whole number{_range(lo, hi)}, got {value}.")
    return int(value)


def check_number(name, value, lo=None, hi=None, lo_open=False):
    """A finite real number in [lo, hi] ((lo, hi] with lo_open); returns it as a float.
    Used by every helper's argument checks; such an error is shown in notebooks/01, section 2."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        value = float(value)
        ok = math.isfinite(value) and (lo is None or value > lo or (value == lo and not lo_open)) \
            and (hi is None or value <= hi)
    if not ok:
        raise SDLibError(f"{name} must be a number{_range(lo, hi, lo_open)}, got {_show(value)}.")
    return value


def check_choice(name, value, choices):
    """One of `choices` (compared as given); returns it.
    Used by every helper's argument checks; such an error is shown in notebooks/01, section 2."""
    if not isinstance(value, str) or value not in choices:
        raise SDLibError(f"{name} must be one of {', '.join(map(repr, choices))}, got {_show(value)}.")
    return value


def check_callable(name, value, signature):
    """A function (or None is handled by the caller); `signature` says how it is called.
    Used by generate and the trainers; loss guidance is taught in notebooks/05, section 4."""
    if not callable(value):
        raise SDLibError(f"{name} must be a function {signature}, got {_show(value)}.")
    return value


def check_prompts(name, value, allow_empty_list=False):
    """A string or a non-empty list of strings -> list of strings.
    Used by every helper that takes prompts; prompts are taught in notebooks/03, section 1."""
    prompts = [value] if isinstance(value, str) else value
    if not isinstance(prompts, (list, tuple)) or not all(isinstance(p, str) for p in prompts) \
            or (not prompts and not allow_empty_list):
        raise SDLibError(f"{name} must be a string or a non-empty list of strings, "
                         f"got {_show(value)}.")
    return list(prompts)


def _range(lo, hi, lo_open=False):
    lo, hi = _num(lo), _num(hi)
    if lo is not None and hi is not None:
        return f" {'above' if lo_open else 'from'} {lo}{' up to' if lo_open else ' to'} {hi}"
    if lo is not None:
        return f" {'>' if lo_open else '>='} {lo}"
    if hi is not None:
        return f" <= {hi}"
    return ""


def _num(value):
    """A bound as text: whole numbers in full (2**63 - 1, not 9.2e+18), others as %g."""
    if value is None:
        return None
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def check_safetensors_file(path):
    """`path` as a complete safetensors file, else one SDLibError naming it (not the safetensors
    library's own error, or a "no weights" that hides the cause). The format (huggingface/safetensors
    README): 8 bytes, the header's length n (little-endian); n bytes of JSON, {name: {"dtype",
    "shape", "data_offsets": [begin, end]}}; then the data, exactly as long as the largest end.
    Used by the loaders; learned files are loaded in notebooks/03, section 6 and notebooks/07."""
    path = Path(path)
    size = path.stat().st_size
    bad = SDLibError(f"{path} is corrupt or truncated: its safetensors header or data is incomplete "
                     f"({size} bytes). Download or save it again.")
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if size < 8 or not 0 < n <= size - 8:
                raise bad
            header = json.loads(f.read(n))
        ends = [entry["data_offsets"][1] for name, entry in header.items() if name != "__metadata__"]
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):  # not JSON, or not its layout
        raise bad from None
    if 8 + n + max(ends, default=0) != size:
        raise bad
    return path
