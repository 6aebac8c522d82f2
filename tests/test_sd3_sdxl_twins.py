"""The real SD3 and SDXL paths, offline, on twins (`sdlib.testing.twins`: the real configs, random
weights, narrower): SD3 medium's twin loads with load_sd (folder and hub id from a cache) and with
diffusers' own from_pretrained, and sdlib.generate draws StableDiffusion3Pipeline's pixels with its
16 latent channels and VAE shift; SDXL base's twin runs StableDiffusionXLPipeline with the shapes its
config promises (notebooks/11 reads them)."""
import os
import subprocess
import sys

import pytest
import torch

import sdlib
from sdlib.testing import twins

SD3_ID = twins.SD3_MEDIUM["hub_id"]


@pytest.fixture(scope="module")
def sd3_folder(tmp_path_factory):
    return twins.build_sd3_twin(tmp_path_factory.mktemp("sd3twin") / "sd3", sample_size=16, text_layers=1,
                                num_layers=2)


def test_sd3_twin_has_sd3_mediums_shapes(sd3_folder):
    sd = sdlib.load_sd(str(sd3_folder), device="cpu")
    real = twins.SD3_MEDIUM
    assert sd.transformer.config.joint_attention_dim == real["transformer"]["joint_attention_dim"] == 4096
    assert sd.transformer.config.pooled_projection_dim == 768 + 1280 == sd.text_encoder.config.projection_dim \
        + sd.text_encoder_2.config.projection_dim
    assert sd.vae.config.latent_channels == sd.transformer.config.in_channels == 16
    assert (sd.vae.config.scaling_factor, sd.vae.config.shift_factor) == (1.5305, 0.0609)
    assert sd.tokenizer_2.pad_token == "!" and sd.tokenizer.pad_token == "<|endoftext|>"
    text = sdlib.encode_text(sd, ["a cat", "a dog"])
    assert text.tokens.shape == (2, 77 + 256, 4096) and text.pooled.shape == (2, 2048)


def test_sd3_twin_generate_is_the_pipeline(sd3_folder):
    from diffusers import StableDiffusion3Pipeline

    pipe = StableDiffusion3Pipeline.from_pretrained(sd3_folder, text_encoder_3=None, tokenizer_3=None)
    pipe.set_progress_bar_config(disable=True)
    sd = sdlib.load_sd(str(sd3_folder), device="cpu")
    with torch.no_grad():  # jitter both alike: random SD3 weights start near zero output
        for a, b in zip(sd.transformer.parameters(), pipe.transformer.parameters()):
            noise = 0.02 * torch.randn(a.shape, generator=torch.Generator().manual_seed(a.numel()))
            a.add_(noise)
            b.add_(noise)
    expected = pipe("a cat on a mat", num_inference_steps=3, guidance_scale=5.0, output_type="pt",
                    generator=torch.Generator().manual_seed(0)).images
    got = sdlib.generate(sd, "a cat on a mat", seed=0, num_steps=3, guidance_scale=5.0, output="tensor")
    assert got.shape == (1, 3, 128, 128) and expected.std() > 0.01
    assert (got - expected).abs().max() <= 1e-5


def test_sd3_hub_id_loads_from_the_cache_offline(sd3_folder, tmp_path):
    twins.place_in_hf_cache(sd3_folder, SD3_ID, tmp_path / "hub")
    code = (f"import sdlib; sd = sdlib.load_sd({SD3_ID!r}, device='cpu'); "
            "print(type(sd.transformer).__name__, len(sd.text_encoders), sdlib.generate(sd, 'a cat', num_steps=2).size)")
    env = dict(os.environ, HF_HOME=str(tmp_path), HF_HUB_OFFLINE="1", SDLIB_MODEL="")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[-2] == "SD3Transformer2DModel 2 (128, 128)"


def test_sdxl_twin_runs_its_pipeline_with_the_configs_shapes(tmp_path):
    from diffusers import StableDiffusionXLPipeline

    folder = twins.build_sdxl_twin(tmp_path / "sdxl", sample_size=16, text_layers=1)
    pipe = StableDiffusionXLPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    emb, _, pooled, _ = pipe.encode_prompt("a cat", do_classifier_free_guidance=False)
    unet = pipe.unet.config
    assert emb.shape == (1, 77, unet.cross_attention_dim) and unet.cross_attention_dim == 768 + 1280
    assert pooled.shape == (1, 1280)
    assert unet.projection_class_embeddings_input_dim == 1280 + 6 * unet.addition_time_embed_dim == 2816
    image = pipe("a cat", num_inference_steps=2, height=128, width=128, output_type="np").images
    assert image.shape == (1, 128, 128, 3)
