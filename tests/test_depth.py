"""Depth-to-image (SD 2's way): the depth map as one more input channel beside the latents, equal to
StableDiffusionDepth2ImgPipeline given depth_map= (no depth estimator), on the built-in model with a
widened UNet and on the SD 2 depth twin; the widened UNet is the UNet exactly before training."""
import dataclasses

import numpy as np
import pytest
import torch

import sdlib
from sdlib.builtin import control_maps as C
from sdlib.conditioning.channels import depth_input, widen_conv_in


def depth_pipe_pixels(sd, seed, **kw):
    from diffusers import StableDiffusionDepth2ImgPipeline

    pipe = StableDiffusionDepth2ImgPipeline(vae=sd.vae, text_encoder=sd.text_encoder, tokenizer=sd.tokenizer,
                                            unet=sd.unet, scheduler=sd.scheduler, depth_estimator=None,
                                            feature_extractor=None)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(generator=torch.Generator("cpu").manual_seed(seed), output_type="np", **kw)
    return torch.from_numpy(out.images).permute(0, 3, 1, 2)  # (B, 3, H, W)


def two_objects(size):
    """A near large square over a far small circle: a depth map with two levels and a picture."""
    big, small = C.plain_scene("red", "square", (0.35, 0.4), 0.45), C.plain_scene("blue", "circle", (0.7, 0.7), 0.2)
    depth = np.maximum(C.control_map(small, size, "depth"), C.control_map(big, size, "depth"))  # (H, W)
    return depth, sdlib.to_pil(C.control_images([big], size))[0]


def randomised(unet, seed=0):
    """The depth UNet with its depth input weights drawn at random, so the depth channel matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        unet.conv_in.weight[:, 4:] = torch.randn(unet.conv_in.weight[:, 4:].shape, generator=g) * 0.3
    return unet


@pytest.fixture(scope="module")
def depth_sd():
    from sdlib.testing.twins import twin_depth_unet

    sd = sdlib.load_sd("builtin", device="cpu")
    return dataclasses.replace(sd, unet=twin_depth_unet(sd.unet).eval())


def test_a_widened_unet_is_the_unet_exactly():
    sd = sdlib.load_sd("builtin", device="cpu")
    wide = widen_conv_in(sd.unet, 1)
    assert wide.config.in_channels == 5 and sd.unet.config.in_channels == 4  # the original untouched
    g = torch.Generator().manual_seed(0)
    x_t, d = torch.randn(2, 4, 16, 16, generator=g), torch.randn(2, 1, 16, 16, generator=g)
    emb = sdlib.encode_text(sd, ["a red circle", ""])
    with torch.no_grad():
        plain = sd.unet(x_t, 400, encoder_hidden_states=emb).sample
        widened = wide(torch.cat([x_t, d], 1), 400, encoder_hidden_states=emb).sample
    assert torch.equal(plain, widened)


@pytest.mark.parametrize("strength", [1.0, 0.6])
def test_depth_loop_matches_the_pipeline(depth_sd, strength):
    sd = depth_sd
    depth, picture = two_objects(sd.image_size)
    ref = depth_pipe_pixels(sd, 4, prompt="a red square", image=picture, depth_map=torch.from_numpy(depth)[None],
                            strength=strength, num_inference_steps=6, guidance_scale=7.5)
    mine = sdlib.generate(sd, "a red square", num_steps=6, seed=4, init_image=picture, strength=strength,
                          depth_map=depth, output="tensor")
    assert (mine - ref).abs().max() <= 1e-5
    other = sdlib.generate(sd, "a red square", num_steps=6, seed=4, init_image=picture, strength=strength,
                           depth_map=np.fliplr(depth).copy(), output="tensor")  # another map, another picture
    assert (mine - other).abs().max() > 0.01


def test_depth_is_rescaled_per_picture_as_the_pipeline_does(depth_sd):
    depth, _ = two_objects(depth_sd.image_size)
    d = depth_input(depth_sd, depth, depth_sd.image_size, depth_sd.image_size)  # (1, 1, h, w)
    assert d.shape == (1, 1, 16, 16) and d.min() == -1 and d.max() == 1
    assert torch.allclose(depth_input(depth_sd, depth * 3 + 2, 128, 128), d, atol=1e-5)  # only the order survives


def test_depth_on_the_sd2_depth_twin_matches_the_pipeline(tmp_path_factory):
    from sdlib.testing import twins

    folder = twins.build_twin("sd-2-depth", tmp_path_factory.mktemp("twins") / "depth", sample_size=8, text_layers=2)
    sd = sdlib.load_sd(str(folder), device="cpu")
    sd = dataclasses.replace(sd, unet=randomised(sd.unet))
    depth, picture = two_objects(sd.image_size)
    ref = depth_pipe_pixels(sd, 1, prompt="a photo of a cat", negative_prompt="blurry", image=picture,
                            depth_map=torch.from_numpy(depth)[None], strength=0.8, num_inference_steps=4)
    mine = sdlib.generate(sd, "a photo of a cat", "blurry", num_steps=4, seed=1, init_image=picture, strength=0.8,
                          depth_map=depth, output="tensor")
    assert (mine - ref).abs().max() <= 1e-5


def test_depth_bad_inputs_are_one_clear_error(depth_sd):
    sd, plain = depth_sd, sdlib.load_sd("builtin", device="cpu")
    depth, _ = two_objects(sd.image_size)
    cases = [
        (sd, dict(depth_map=np.zeros((128, 128), np.float32)), "depth_map must vary"),
        (sd, dict(depth_map=np.ones((2, 3, 128, 128), np.float32)), r"depth_map must be a float map \(H, W\)"),
        (sd, dict(depth_map=depth * np.nan), "depth_map must hold finite numbers"),
        (sd, dict(), "pass depth_map= for a depth model"),
        (plain, dict(depth_map=depth), "depth_map needs a depth model"),
    ]
    for model, kw, message in cases:
        with pytest.raises(sdlib.SDLibError, match=message):
            sdlib.generate(model, "a red square", num_steps=2, **kw)
    with pytest.raises(sdlib.SDLibError, match="extra must be a whole number"):
        widen_conv_in(plain.unet, 0)


def test_the_depth_model_of_each_world(tmp_path_factory):
    """A twin's depth UNet is found beside its parts; SD v1.x's is SD 2's depth model (by hub id)."""
    from sdlib.conditioning import channels
    from sdlib.testing import twins

    folder = twins.build_twin("sd-v1-4", tmp_path_factory.mktemp("twins") / "v1", sample_size=8, text_layers=2)
    sd = sdlib.load_sd(str(folder), device="cpu")
    depth = channels.load_depth_model(sd)
    assert (depth.unet.config.in_channels, channels.extra_channels(depth), depth.text_encoder) == (5, 1, sd.text_encoder)
    assert channels.DEPTH_SD2 in sdlib.load.MOVED["stabilityai/stable-diffusion-2-depth"]
    with pytest.raises(sdlib.SDLibError, match="no depth model is known"):
        channels.load_depth_model(dataclasses.replace(sd, name=str(tmp_path_factory.mktemp("empty"))))
