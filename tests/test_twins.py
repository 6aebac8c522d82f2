"""Twins of real SD checkpoints: the real configs, loadable by folder and by hub id offline, and
the sampler equal to StableDiffusionPipeline on them (the v-prediction SD 2.1 twin included)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import sdlib
from sdlib.testing import twins

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def twin_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("twins")


@pytest.fixture(scope="module")
def v1(twin_dir):
    return twins.build_twin("sd-v1-4", twin_dir / "sd-v1-4", sample_size=8, fp16_variants=True)


@pytest.fixture(scope="module")
def v2(twin_dir):
    return twins.build_twin("sd-2-1", twin_dir / "sd-2-1", sample_size=8)


# What each twin must share with the checkpoint it mirrors, read off the hub's config files:
# (text width, text layers, text heads, UNet heads, linear projection, upcast, latent side,
#  scheduler, prediction type, pad token)
REAL = {
    "sd-v1-4": (768, 12, 12, 8, False, False, 64, "PNDMScheduler", "epsilon", "<|endoftext|>"),
    "sd-v1-5": (768, 12, 12, 8, False, False, 64, "PNDMScheduler", "epsilon", "<|endoftext|>"),
    "sd-2-1-base": (1024, 23, 16, [5, 10, 20, 20], True, False, 64, "PNDMScheduler", "epsilon", "!"),
    "sd-2-depth": (1024, 23, 16, [5, 10, 20, 20], True, False, 64, "PNDMScheduler", "epsilon", "!"),
    "sd-2-1": (1024, 23, 16, [5, 10, 20, 20], True, True, 96, "DDIMScheduler", "v_prediction", "!"),
}
IN_CHANNELS = {"sd-2-depth": 5}  # 4 latent channels + the depth map


@pytest.mark.parametrize("name", list(REAL))
def test_twin_configs_are_the_real_ones_narrowed(name):
    cfg = twins.twin_configs(name)
    width, layers, heads, unet_heads, linear, upcast, side, sched, kind, pad = REAL[name]
    assert (cfg["text"]["hidden_size"], cfg["text"]["num_hidden_layers"],
            cfg["text"]["num_attention_heads"]) == (width, layers, heads)
    assert cfg["unet"]["cross_attention_dim"] == width
    assert cfg["unet"]["attention_head_dim"] == unet_heads
    assert cfg["unet"].get("use_linear_projection", False) == linear
    assert cfg["unet"].get("upcast_attention", False) == upcast
    assert cfg["unet"]["sample_size"] == side and cfg["image_size"] == side * 8
    assert cfg["scheduler"]["_class_name"] == sched
    assert cfg["scheduler"].get("prediction_type", "epsilon") == kind
    assert cfg["pad_token"] == pad
    assert cfg["vae"]["scaling_factor"] == 0.18215
    assert cfg["unet"]["block_out_channels"] == [32, 64, 128, 128]  # SD's 320..1280, / 10
    assert cfg["unet"]["in_channels"] == IN_CHANNELS.get(name, 4)
    assert twins.TWINS[name]["unet"]["block_out_channels"] == [320, 640, 1280, 1280]


def test_v1_twin_folder_is_a_hub_folder(v1):
    index = json.loads((v1 / "model_index.json").read_text())
    assert index["safety_checker"] == ["stable_diffusion", "StableDiffusionSafetyChecker"]
    assert index["scheduler"] == ["diffusers", "PNDMScheduler"]
    assert (v1 / "unet" / "diffusion_pytorch_model.fp16.safetensors").is_file()
    sd = sdlib.load_sd(str(v1), device="cpu")
    assert sd.dtype == torch.float32 and next(sd.unet.parameters()).dtype == torch.float32
    assert len(sd.tokenizer) == 49408 and sd.tokenizer.model_max_length == 77
    assert sd.text_encoder.config.hidden_size == sd.unet.config.cross_attention_dim == 768


def test_hub_id_loads_from_the_cache_offline(v1, tmp_path):
    """Colab's code path, offline: load_sd("CompVis/stable-diffusion-v1-4") from a hub cache."""
    twins.place_in_hf_cache(v1, "CompVis/stable-diffusion-v1-4", tmp_path / "hub")
    code = ("import sdlib; sd = sdlib.load_sd('CompVis/stable-diffusion-v1-4', device='cpu'); "
            "print(type(sd.scheduler).__name__, sd.unet.config.cross_attention_dim, "
            "sdlib.generate(sd, 'a cat', num_steps=2).size)")
    env = dict(os.environ, HF_HOME=str(tmp_path), HF_HUB_OFFLINE="1", SDLIB_MODEL="")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[-2] == "PNDMScheduler 768 (64, 64)"


def pipe_pixels(sd, prompt, **kw):
    pipe = sd.pipeline()
    pipe.set_progress_bar_config(disable=True)
    out = pipe(prompt, generator=torch.Generator("cpu").manual_seed(kw.pop("seed")), output_type="np", **kw)
    return torch.from_numpy(out.images).permute(0, 3, 1, 2)


@pytest.mark.parametrize("which", ["v1", "v2"])
def test_sampler_equals_pipeline_on_twins(which, request):
    """SD v1 (PNDM, eps) and SD 2.1 (DDIM, v-prediction, OpenCLIP-H width, pad "!") twins:
    sdlib.generate and StableDiffusionPipeline give the same pixels."""
    sd = sdlib.load_sd(str(request.getfixturevalue(which)), device="cpu")
    kw = dict(num_inference_steps=4, guidance_scale=7.5, seed=1)
    ref = pipe_pixels(sd, "a photo of a cat", negative_prompt="blurry", **kw)
    mine = sdlib.generate(sd, "a photo of a cat", "blurry", num_steps=4, guidance_scale=7.5, seed=1,
                          output="tensor")
    assert (mine - ref).abs().max() <= 1e-5
    assert ref.std() > 0.01  # not a blank image


def test_v_prediction_twin_callback_x0_is_the_schedulers(v2):
    sd = sdlib.load_sd(str(v2), device="cpu")
    assert sd.scheduler.config.prediction_type == "v_prediction"
    seen = []
    sdlib.generate(sd, "a cat", num_steps=3, guidance_scale=1.0, callback=lambda **kw: seen.append(kw))
    ref = sdlib.make_scheduler("ddim", sd.scheduler)
    ref.set_timesteps(3)
    emb = sdlib.encode_text(sd, "a cat")
    x_t = seen[0]["x_t"]
    for s, t in zip(seen, ref.timesteps):
        with torch.no_grad():
            v = sd.unet(x_t, t, encoder_hidden_states=emb).sample
        out = ref.step(v, t, x_t)
        assert torch.allclose(s["x0_pred"], out.pred_original_sample, atol=1e-5)
        x_t = out.prev_sample


@pytest.mark.parametrize("old, twin", [("runwayml/stable-diffusion-v1-5", "v1"), ("stabilityai/stable-diffusion-2-1", "v2")])
def test_an_old_id_loads_its_copy_from_the_cache_offline(old, twin, request, tmp_path):
    """Issue 27: a twin placed under the checkpoint's *current* id loads by its deleted id, offline,
    and the load says where it went."""
    current = sdlib.load.MOVED[old][0]
    twins.place_in_hf_cache(request.getfixturevalue(twin), current, tmp_path / "hub")
    code = f"import sdlib; sd = sdlib.load_sd({old!r}, device='cpu'); print(sd.name, sd.unet.config.cross_attention_dim)"
    env = dict(os.environ, HF_HOME=str(tmp_path), HF_HUB_OFFLINE="1", SDLIB_MODEL="")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert lines[-1] == f"{current} {768 if twin == 'v1' else 1024}"
    assert lines[0] == f"sdlib: {old!r} was deleted from the Hugging Face hub ({sdlib.load.MOVED[old][1]}; " \
                       f"{sdlib.load.MOVED[old][2]}); loading its copy {current!r}."
