"""Shared fixtures: every test runs on the built-in model on CPU, offline, seeded."""
import os

os.environ.setdefault("SDLIB_MODEL", "builtin")
os.environ.setdefault("SDLIB_DEVICE", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TQDM_DISABLE", "1")  # no progress bars in test output (nbval's kernels inherit it)

import pytest  # noqa: E402
import torch  # noqa: E402

import sdlib  # noqa: E402


@pytest.fixture(scope="session")
def sd():
    torch.manual_seed(0)
    return sdlib.load_sd("builtin", device="cpu")
