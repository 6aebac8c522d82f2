"""The x4 upscaler by hand (a low-resolution picture as 3 extra input channels, noised to a level the
UNet is told) equals StableDiffusionUpscalePipeline on a twin of stabilityai/stable-diffusion-x4-upscaler."""
import pytest
import torch

import sdlib
from sdlib.builtin import control_maps as C
from sdlib.sampling.upscale import LOW_RES_SCHEDULER, upscale
from sdlib.testing import twins


@pytest.fixture(scope="module")
def x4(tmp_path_factory):
    folder = twins.build_twin("sd-x4-upscaler", tmp_path_factory.mktemp("twins") / "x4", sample_size=16, text_layers=2)
    return sdlib.load_sd(str(folder), device="cpu")


def picture(size=16):
    return sdlib.to_pil(C.control_images([C.plain_scene("red", "circle", (0.5, 0.5), 0.5)], size))[0]


def pipe_pixels(sd, seed, **kw):
    from diffusers import DDPMScheduler, StableDiffusionUpscalePipeline

    pipe = StableDiffusionUpscalePipeline(vae=sd.vae, text_encoder=sd.text_encoder, tokenizer=sd.tokenizer,
                                          unet=sd.unet, low_res_scheduler=DDPMScheduler(**LOW_RES_SCHEDULER),
                                          scheduler=sd.scheduler)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(generator=torch.Generator("cpu").manual_seed(seed), output_type="np", **kw)
    return torch.from_numpy(out.images).permute(0, 3, 1, 2)  # (B, 3, H, W)


@pytest.mark.parametrize("noise_level", [0, 20, 200])
def test_upscale_matches_the_pipeline(x4, noise_level):
    assert (x4.vae_scale, x4.unet.config.in_channels, x4.scheduler.config.prediction_type) == (4, 7, "v_prediction")
    ref = pipe_pixels(x4, 3, prompt="a red circle", negative_prompt="blurry", image=picture(),
                      noise_level=noise_level, num_inference_steps=4)
    mine = upscale(x4, picture(), "a red circle", "blurry", noise_level=noise_level, num_steps=4, seed=3,
                   output="tensor")
    assert mine.shape == ref.shape == (1, 3, 64, 64)  # 16 px -> 64 px
    assert (mine - ref).abs().max() <= 1e-5


def test_upscale_bad_inputs_are_one_clear_error(x4):
    with pytest.raises(sdlib.SDLibError, match="noise_level must be"):
        upscale(x4, picture(), "a red circle", noise_level=351, num_steps=2)
    with pytest.raises(sdlib.SDLibError, match="upscale needs the x4 upscaler"):
        upscale(sdlib.load_sd("builtin", device="cpu"), picture(), "a red circle", num_steps=2)
    with pytest.raises(sdlib.SDLibError, match="pass depth_map= for a depth model"):
        sdlib.generate(x4, "a red circle", num_steps=2)
