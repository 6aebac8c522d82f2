"""What the notebooks' prose says about real Stable Diffusion is true of SD's own configs.

The notebooks run on the built-in model, but their text states facts about SD v1 (77 positions,
0.18215, PNDM's extra first step, parameter counts, ...). Each fact is found in the text (so a
reworded sentence fails here and gets re-checked) and checked against the SD v1.4 twin's configs,
which are the hub's (`sdlib.testing.twins`). Parameter counts use the full widths on the meta
device: no memory, no weights.
"""
import json
import re
from pathlib import Path

import pytest
import torch

from sdlib.testing import twins

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
SD1 = twins.TWINS["sd-v1-4"]


def prose(name):
    nb = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
    return " ".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")


def full_width_params():
    """Parameter counts (millions) of SD v1.4's UNet, text encoder and VAE at their real widths."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.device("meta"):
        parts = {"unet": UNet2DConditionModel(**SD1["unet"]),
                 "text encoder": CLIPTextModel(CLIPTextConfig(**SD1["text"])),
                 "VAE": AutoencoderKL(**SD1["vae"])}
    return {k: sum(p.numel() for p in m.parameters()) / 1e6 for k, m in parts.items()}


def pndm(num_steps):
    from diffusers import PNDMScheduler

    sch = PNDMScheduler.from_config({k: v for k, v in SD1["scheduler"].items() if k != "_class_name"})
    sch.set_timesteps(num_steps)
    return sch.timesteps


FACTS = [  # (notebook, sentence pattern, check on SD v1's configs)
    ("00_overview", r"pads to 77 positions", lambda: SD1["text"]["max_position_embeddings"] == 77),
    ("00_overview", r"25 steps visit 26 timesteps", lambda: len(pndm(25)) == 26),
    ("00_overview", r"about 860 M parameters in the UNet, 123 M in the text encoder and 84 M in the VAE",
     lambda: [round(v) for v in full_width_params().values()] == [860, 123, 84]),
    ("01_vae_latents", r"0\.18215 for SD v1", lambda: SD1["vae"]["scaling_factor"] == 0.18215),
    ("01_vae_latents", r"3 colour channels x 8 x 8 pixels in, 4 numbers out, so 48",
     lambda: 2 ** (len(SD1["vae"]["block_out_channels"]) - 1) == 8 and SD1["vae"]["latent_channels"] == 4),
    ("02_noise_schedules", r"start here at t=901, not 999", lambda: int(pndm(10)[0]) == 901),
    ("03_text_embeddings", r"vocabulary of 49,408 entries", lambda: SD1["text"]["vocab_size"] == 49408),
    ("03_text_embeddings", r"768 for SD v1", lambda: SD1["text"]["hidden_size"] == 768 == SD1["unet"]["cross_attention_dim"]),
    ("04_unet_denoising", r"4 down and 4 up blocks, 860 M parameters and cross-attention at three of its four resolutions",
     lambda: (len(SD1["unet"]["down_block_types"]), len(SD1["unet"]["up_block_types"]),
              sum(b.startswith("CrossAttn") for b in SD1["unet"]["down_block_types"]),
              round(full_width_params()["unet"])) == (4, 4, 3, 860)),
]


@pytest.mark.parametrize("notebook,pattern,check", FACTS, ids=[f"{n[:2]}-{p[:24]}" for n, p, _ in FACTS])
def test_real_sd_fact_in_the_prose_is_true(notebook, pattern, check):
    assert re.search(pattern, prose(notebook)), f"{notebook} no longer says {pattern!r}: re-check it"
    assert check()
