"""The hand-written sampler equals diffusers' pipelines, bit for bit in practice (<= 1e-5)."""
import numpy as np
import pytest
import torch
from diffusers import StableDiffusionImg2ImgPipeline

import sdlib

SCHEDULERS = ["pndm", "lms", "ddim", "euler", "euler_a", "dpm++"]


def pipe_images(pipe, **kw):
    out = pipe(generator=torch.Generator("cpu").manual_seed(kw.pop("seed")), output_type="np", **kw)
    return torch.from_numpy(out.images).permute(0, 3, 1, 2)  # (B, 3, H, W)


@pytest.mark.parametrize("name", SCHEDULERS)
@pytest.mark.parametrize("negative", ["", "a blue square"])
def test_matches_stable_diffusion_pipeline(sd, name, negative):
    pipe = sd.pipeline(scheduler=sdlib.make_scheduler(name, sd.scheduler))
    pipe.set_progress_bar_config(disable=True)
    ref = pipe_images(pipe, prompt="a red circle on the left", negative_prompt=negative or None,
                      num_inference_steps=8, guidance_scale=7.5, seed=3)
    mine = sdlib.generate(sd, "a red circle on the left", negative, num_steps=8, guidance_scale=7.5,
                          seed=3, scheduler=sdlib.make_scheduler(name, sd.scheduler), output="tensor")
    assert mine.shape == ref.shape == (1, 3, sd.image_size, sd.image_size)
    assert (mine - ref).abs().max() <= 1e-5
    assert ref.std() > 0.02  # a real picture, not a saturated constant


def test_batch_and_guidance_one_match_pipeline(sd):
    pipe = sd.pipeline()
    pipe.set_progress_bar_config(disable=True)
    prompts = ["a red circle", "a green square"]
    ref = pipe_images(pipe, prompt=prompts, num_inference_steps=5, guidance_scale=1.0, seed=1)
    mine = sdlib.generate(sd, prompts, num_steps=5, guidance_scale=1.0, seed=1, output="tensor")
    assert (mine - ref).abs().max() <= 1e-5


@pytest.mark.parametrize("name", ["ddim", "euler"])
def test_img2img_matches_img2img_pipeline(sd, name):
    rng = np.random.default_rng(0)
    init = (rng.random((sd.image_size, sd.image_size, 3)) * 255).astype(np.uint8)
    pipe = StableDiffusionImg2ImgPipeline(**sd.pipeline().components)
    pipe.scheduler = sdlib.make_scheduler(name, sd.scheduler)
    pipe.set_progress_bar_config(disable=True)
    init_pil = sdlib.load_image(init)
    ref = pipe_images(pipe, prompt="a red circle", image=init_pil, strength=0.6,
                      num_inference_steps=10, guidance_scale=7.5, seed=5)
    mine = sdlib.generate(sd, "a red circle", num_steps=10, guidance_scale=7.5, seed=5,
                          scheduler=sdlib.make_scheduler(name, sd.scheduler), init_image=init_pil,
                          strength=0.6, output="tensor")
    assert (mine - ref).abs().max() <= 1e-5


def test_seed_changes_the_image(sd):
    a = sdlib.generate(sd, "a red circle", num_steps=4, seed=0, output="tensor")
    b = sdlib.generate(sd, "a red circle", num_steps=4, seed=1, output="tensor")
    assert (a - b).abs().max() > 1e-2


def test_callback_sees_every_step(sd):
    seen = []
    sdlib.generate(sd, "a red circle", num_steps=6, seed=0, scheduler=sdlib.make_scheduler("euler", sd.scheduler),
                   callback=lambda **kw: seen.append(kw))
    assert [s["step"] for s in seen] == list(range(6))
    assert set(seen[0]) == {"step", "t", "sigma", "x_t", "eps", "x0_pred"}
    sigmas = [s["sigma"] for s in seen]
    assert sigmas == sorted(sigmas, reverse=True) and sigmas[0] > 10  # noise falls from ~14.6
    assert seen[0]["x_t"].shape == seen[0]["x0_pred"].shape == (1, 4, sd.image_size // 8, sd.image_size // 8)
    s = seen[2]  # Euler: x0_pred = x_t - sigma * eps
    assert torch.allclose(s["x0_pred"], s["x_t"] - s["sigma"] * s["eps"])


def test_guidance_loss_moves_the_image(sd):
    def blue_loss(image):  # (B, 3, H, W) in [0, 1]: want the blue channel high
        return -image[:, 2].mean()

    kw = dict(num_steps=10, seed=0, guidance_scale=7.5, output="tensor")
    plain = sdlib.generate(sd, "a red circle", **kw)
    guided = sdlib.generate(sd, "a red circle", loss_fn=blue_loss, loss_scale=200, loss_every=2, **kw)
    assert guided[:, 2].mean() > plain[:, 2].mean() + 0.02


def test_bad_size_is_one_clear_error(sd):
    with pytest.raises(sdlib.SDLibError, match="multiples of 8"):
        sdlib.generate(sd, "a red circle", height=60, width=64, num_steps=2)


def test_precomputed_embeddings_give_the_same_image(sd):
    kw = dict(num_steps=4, seed=2, output="tensor")
    ref = sdlib.generate(sd, "a red circle", "a blue square", **kw)
    emb = sdlib.encode_text(sd, "a red circle")
    neg = sdlib.encode_text(sd, "a blue square")
    assert torch.equal(sdlib.generate(sd, None, text_emb=emb, uncond_emb=neg, **kw), ref)
