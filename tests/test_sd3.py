"""SD3 in the library (`sdlib.models.sd3`): load_sd reads a StableDiffusion3Pipeline folder into the
bundle (a transformer, two text encoders, no T5), encode_text is the pipeline's encode_prompt, and
sdlib.generate draws the pipeline's own pixels, on a randomly initialised miniature (weights
jittered away from adaLN-Zero's identity blocks and zero output, so the transformer draws)."""
import pytest
import torch

import sdlib
from sdlib.builtin import sd3 as factory
from sdlib.models.sd3 import JointText

PROMPTS = ["a big red circle on the left", "two small blue squares"]


@pytest.fixture(scope="module")
def sd(tmp_path_factory):
    folder = factory.build_sd3(tmp_path_factory.mktemp("sd3") / "random")
    sd = sdlib.load_sd(str(folder), device="cpu")
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in sd.transformer.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return sd


def test_the_bundle_holds_a_transformer_and_two_text_encoders(sd):
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel

    assert sd.unet is None and isinstance(sd.transformer, SD3Transformer2DModel) and sd.denoiser is sd.transformer
    assert len(sd.text_encoders) == 2 and len(sd.tokenizers) == 2
    assert isinstance(sd.scheduler, FlowMatchEulerDiscreteScheduler)
    assert sd.image_size == 128 and sd.dtype == torch.float32
    assert {m.dtype for m in (sd.transformer, sd.vae, *sd.text_encoders)} == {torch.float32}
    assert "transformer" in repr(sd) and "text encoder 2" in repr(sd)


def test_encode_text_is_the_pipelines_encode_prompt(sd):
    pipe = sd.pipeline()
    emb, neg, pooled, neg_pooled = pipe.encode_prompt(PROMPTS, None, None, do_classifier_free_guidance=True)
    text = sdlib.encode_text(sd, PROMPTS)
    assert isinstance(text, JointText) and len(text) == 2
    assert text.tokens.shape == (2, 77 + 256, sd.transformer.config.joint_attention_dim)
    assert torch.equal(text.tokens, emb) and torch.equal(text.pooled, pooled)
    empty = sdlib.encode_text(sd, ["", ""])
    assert torch.equal(empty.tokens, neg) and torch.equal(empty.pooled, neg_pooled)


@pytest.mark.parametrize("guidance_scale", [1.0, 4.0])
def test_generate_draws_the_pipelines_pixels(sd, guidance_scale):
    kw = dict(num_inference_steps=4, guidance_scale=guidance_scale, output_type="pt")
    expected = sd.pipeline()(PROMPTS, generator=torch.Generator().manual_seed(5), **kw).images
    got = sdlib.generate(sd, PROMPTS, seed=5, num_steps=4, guidance_scale=guidance_scale, output="tensor")
    assert expected.shape == got.shape == (2, 3, 128, 128)
    assert expected.std() > 0.01  # a picture, not a constant
    assert (got - expected).abs().max() <= 1e-5


def test_the_folder_loads_with_diffusers_own_from_pretrained(sd, tmp_path):
    from diffusers import StableDiffusion3Pipeline

    folder = factory.save_sd3(tmp_path / "jittered", {"transformer": sd.transformer, "text_encoder": sd.text_encoder,
                                                     "text_encoder_2": sd.text_encoder_2}, sd.vae)
    pipe = StableDiffusion3Pipeline.from_pretrained(folder, text_encoder_3=None, tokenizer_3=None)
    assert {m.dtype for m in (pipe.transformer, pipe.vae, pipe.text_encoder, pipe.text_encoder_2)} == {torch.float32}
    again = sdlib.load_sd(str(folder), device="cpu")
    expected = pipe("a red circle", num_inference_steps=3, generator=torch.Generator().manual_seed(1),
                    output_type="pt").images
    got = sdlib.generate(again, "a red circle", seed=1, num_steps=3, guidance_scale=pipe.guidance_scale,
                         output="tensor")
    assert (got - expected).abs().max() <= 1e-5


def test_given_embeddings_draw_what_the_prompts_draw(sd):
    text, empty = sdlib.encode_text(sd, PROMPTS[:1]), sdlib.encode_text(sd, [""])
    a = sdlib.generate(sd, PROMPTS[0], seed=2, num_steps=3, output="latents")
    b = sdlib.generate(sd, None, seed=2, num_steps=3, output="latents", text_emb=text, uncond_emb=empty)
    assert torch.equal(a, b)


def test_the_vae_shift_factor_is_undone_on_decode(sd):
    import dataclasses

    shifted = dataclasses.replace(sd, vae=factory.sd3_vae())
    shifted.vae.register_to_config(shift_factor=0.25)
    images = torch.rand(1, 3, 128, 128)
    z = sdlib.encode(shifted, images)
    with torch.no_grad():
        raw = shifted.vae.encode(images * 2 - 1).latent_dist.mean
    assert torch.allclose(z, (raw - 0.25) * shifted.vae.config.scaling_factor, atol=1e-6)
    with torch.no_grad():
        expected = (shifted.vae.decode(z / shifted.vae.config.scaling_factor + 0.25).sample / 2 + 0.5).clamp(0, 1)
    assert torch.allclose(sdlib.decode(shifted, z), expected, atol=1e-6)


def test_bad_inputs_are_one_clear_error(sd):
    with pytest.raises(sdlib.SDLibError, match="text_emb must be SD3's text conditioning, a JointText"):
        sdlib.generate(sd, None, text_emb=torch.zeros(1, 77, 32), num_steps=2)
    with pytest.raises(sdlib.SDLibError, match="depth_map needs a depth model"):
        sdlib.generate(sd, "a red circle", depth_map=torch.zeros(128, 128), num_steps=2)
    with pytest.raises(sdlib.SDLibError, match="control_image needs a ControlNet"):
        sdlib.generate(sd, "a red circle", control_image=torch.zeros(128, 128), num_steps=2)


def test_denoiser_flops_counts_one_call_of_either_denoiser(sd):
    from sdlib.measure import speed

    unet = sdlib.load_sd("builtin", device="cpu")
    assert speed.denoiser_flops(unet) == speed.flop_parts(unet)["total"]  # the UNet's own count, batch 2
    one, two = speed.denoiser_flops(sd, batch=1), speed.denoiser_flops(sd, batch=2)
    assert one > 0 and two == 2 * one


def test_a_missing_builtin_sd3_folder_is_one_clear_error(monkeypatch, tmp_path):
    from sdlib.models import sd3 as sd3_module

    monkeypatch.setattr(sd3_module, "SD3_BUILTIN", tmp_path / "builtin-sd3")
    with pytest.raises(sdlib.SDLibError, match=r"the built-in SD3 is not in the package .*train_sd3"):
        sdlib.load_sd("builtin-sd3")
