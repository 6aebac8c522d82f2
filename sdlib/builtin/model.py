"""The built-in model: a small Stable Diffusion with SD v1's classes, built from a seed.

It has exactly the parts of SD v1 (AutoencoderKL with 4 latent channels and a downsampling factor
of 8, CLIPTextModel with 77 positions and the real CLIP tokenizer, UNet2DConditionModel with
cross-attention, SD's scheduler config), only narrower, so that every notebook runs in seconds on
a laptop CPU. It is written in the diffusers folder layout, so it loads through exactly the same
`from_pretrained` code as `CompVis/stable-diffusion-v1-4`.

The trained model ships in the package (`SHIPPED`, made by `python -m sdlib.builtin.train`, see its model
card). Without it (a checkout before training), `build_builtin` makes the same architecture
randomly initialised from `SEED` into a cache folder: pictures are then noise-like, but every
shape, step and equality the course shows is still real.
"""
import json
import os
from pathlib import Path

import torch

from ..models.builtin_files import NAME, SHIPPED, VERSION, builtin_path, cache_dir  # noqa: F401  (re-exported)
from ..models.clip_tokenizer import BOS_ID, EOS_ID, MAX_LENGTH, VOCAB_SIZE, save_clip_tokenizer

SEED = 0
IMAGE_SIZE = 128  # pixels; latents are IMAGE_SIZE // 8 = 16

# SD v1's scheduler config (scaled_linear betas from 0.00085 to 0.012, 1000 steps, "leading"
# timesteps with steps_offset 1), run by DDIM rather than SD v1's PNDM: this small model's
# predictions differ more between prompt and empty prompt than SD's do, and PNDM's (and LMS's)
# multistep extrapolation overshoots at guidance 7.5 (measured in the model card); DDIM takes one
# step at a time and stays stable. Any diffusers scheduler can still be swapped in.
SCHEDULER_CONFIG = {
    "_class_name": "DDIMScheduler", "prediction_type": "epsilon", "beta_start": 0.00085, "beta_end": 0.012,
    "beta_schedule": "scaled_linear", "num_train_timesteps": 1000, "set_alpha_to_one": False,
    "skip_prk_steps": True, "steps_offset": 1, "clip_sample": False, "trained_betas": None,
}

VAE_CONFIG = dict(
    in_channels=3, out_channels=3, latent_channels=4,
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(32, 64, 128, 128), layers_per_block=1, norm_num_groups=16,
    sample_size=IMAGE_SIZE, scaling_factor=0.18215,
)
TEXT_CONFIG = dict(
    vocab_size=VOCAB_SIZE, hidden_size=64, intermediate_size=256, num_hidden_layers=2,
    num_attention_heads=4, max_position_embeddings=MAX_LENGTH, hidden_act="quick_gelu",
    bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=EOS_ID, projection_dim=64,
)
UNET_CONFIG = dict(
    sample_size=IMAGE_SIZE // 8, in_channels=4, out_channels=4, layers_per_block=1,
    block_out_channels=(64, 128, 192), down_block_types=("CrossAttnDownBlock2D",) * 3,
    up_block_types=("CrossAttnUpBlock2D",) * 3, cross_attention_dim=64,
    attention_head_dim=8, norm_num_groups=16,
)
MODEL_INDEX = {
    "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.30.0",
    "feature_extractor": [None, None], "safety_checker": [None, None],
    "requires_safety_checker": False, "scheduler": ["diffusers", "DDIMScheduler"],
    "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
    "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
}


def build_builtin(folder, seed=SEED):
    """Build the model from `seed` and save it in the diffusers layout (safetensors)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    folder = Path(folder)
    tmp = folder.with_name(f"{folder.name}.tmp{os.getpid()}")
    torch.manual_seed(seed)
    AutoencoderKL(**VAE_CONFIG).save_pretrained(tmp / "vae", safe_serialization=True)
    torch.manual_seed(seed + 1)
    CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG)).save_pretrained(
        tmp / "text_encoder", safe_serialization=True)
    torch.manual_seed(seed + 2)
    UNet2DConditionModel(**UNET_CONFIG).save_pretrained(tmp / "unet", safe_serialization=True)
    write_skeleton(tmp)
    (tmp / "README.md").write_text(
        f"# sdlib built-in model ({VERSION})\n\nRandomly initialised from seed {seed}; "
        "SD v1 classes and scheduler config at a small width. See sdlib/builtin/model.py.\n")
    if folder.exists():  # another process finished first
        import shutil
        shutil.rmtree(tmp)
    else:
        tmp.rename(folder)
    return folder


def write_skeleton(folder):
    """The weight-free parts of the folder: tokenizer, scheduler config, model_index.json."""
    folder = Path(folder)
    (folder / "scheduler").mkdir(parents=True, exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(SCHEDULER_CONFIG, indent=2))
    save_clip_tokenizer(folder / "tokenizer")
    (folder / "model_index.json").write_text(json.dumps(MODEL_INDEX, indent=2))
    return folder

