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


@pytest.mark.parametrize("name", ["ddim", "euler"])
def test_seed_is_the_starting_noise(sd, name):
    """x_T is torch.randn from a CPU generator seeded with `seed`, times init_noise_sigma."""
    seen = []
    scheduler = sdlib.make_scheduler(name, sd.scheduler)
    sdlib.generate(sd, "a red circle", num_steps=2, seed=7, scheduler=scheduler,
                   callback=lambda **kw: seen.append(kw["x_t"]))
    h = sd.image_size // sd.vae_scale
    noise = torch.randn((1, 4, h, h), generator=torch.Generator("cpu").manual_seed(7))
    scheduler.set_timesteps(2)
    assert torch.equal(seen[0], noise * scheduler.init_noise_sigma)


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
    assert torch.allclose(s["x0_pred"], s["x_t"] - s["sigma"] * s["eps"], atol=1e-5)


def test_guidance_loss_moves_the_image(sd):
    def blue_loss(image):  # (B, 3, H, W) in [0, 1]: want the blue channel high
        return -image[:, 2].mean()

    kw = dict(num_steps=10, seed=0, guidance_scale=7.5, output="tensor")
    plain = sdlib.generate(sd, "a red circle", **kw)
    guided = sdlib.generate(sd, "a red circle", loss_fn=blue_loss, loss_scale=200, loss_every=2, **kw)
    assert guided[:, 2].mean() > plain[:, 2].mean() + 0.02


def test_bad_size_is_one_clear_error(sd):
    with pytest.raises(sdlib.SDLibError, match="height must be a multiple of 8"):
        sdlib.generate(sd, "a red circle", height=60, width=64, num_steps=2)


def test_precomputed_embeddings_give_the_same_image(sd):
    kw = dict(num_steps=4, seed=2, output="tensor")
    ref = sdlib.generate(sd, "a red circle", "a blue square", **kw)
    emb = sdlib.encode_text(sd, "a red circle")
    neg = sdlib.encode_text(sd, "a blue square")
    assert torch.equal(sdlib.generate(sd, None, text_emb=emb, uncond_emb=neg, **kw), ref)


BAD_INPUTS = [  # (keyword arguments, what the one-line error must say)
    (dict(strength=0, init_image="INIT"), r"strength must be a number above 0 up to 1, got 0"),
    (dict(strength=1.5, init_image="INIT"), r"strength must be a number above 0 up to 1, got 1.5"),
    (dict(strength=0.03, init_image="INIT", num_steps=25), r"strength 0.03 with num_steps 25 runs .* 0 steps"),
    (dict(num_steps=0), r"num_steps must be a whole number from 1 to 1000, got 0"),
    (dict(num_steps=2.5), r"num_steps must be a whole number from 1 to 1000, got 2.5"),
    (dict(num_steps=5000), r"num_steps must be a whole number from 1 to 1000, got 5000"),
    (dict(scheduler="nope"), r"scheduler must be one of 'lms'.*got 'nope'"),
    (dict(scheduler=42), r"scheduler must be None, a name like 'ddim'.*got int"),
    (dict(seed="a"), r"seed must be a whole number from 0 to .*got 'a'"),
    (dict(seed=-1), r"seed must be a whole number from 0 to .*got -1"),
    (dict(loss_every=0, loss_fn=lambda im: im.mean(), loss_scale=1), r"loss_every must be a whole number >= 1, got 0"),
    (dict(loss_scale=-1, loss_fn=lambda im: im.mean()), r"loss_scale must be a number >= 0, got -1"),
    (dict(loss_scale=3), r"loss_scale is 3 but loss_fn is None"),
    (dict(loss_fn="blue", loss_scale=1), r"loss_fn must be a function"),
    (dict(loss_fn=lambda im: im, loss_scale=1), r"loss_fn must return one number"),
    (dict(prompt=None), r"prompt must be a string or a non-empty list of strings, got None"),
    (dict(prompt=[]), r"prompt must be a string or a non-empty list of strings, got \[\]"),
    (dict(prompt=["a", 3]), r"prompt must be a string or a non-empty list of strings"),
    (dict(prompt=["a", "b"], negative_prompt=["c"]), r"negative_prompt has 1 entries for 2 prompts"),
    (dict(negative_prompt=None), r"negative_prompt must be a string or a non-empty list"),
    (dict(output="jpg"), r"output must be one of 'pil', 'tensor', 'latents', got 'jpg'"),
    (dict(guidance_scale="high"), r"guidance_scale must be a number, got 'high'"),
    (dict(guidance_scale=float("nan")), r"guidance_scale must be a number, got nan"),
    (dict(height=0), r"height must be a whole number >= 8, got 0"),
    (dict(width=100), r"width must be a multiple of 8 .* got 100; try 96"),
    (dict(callback=1), r"callback must be a function \(step, t, sigma, x_t, eps, x0_pred\)"),
    (dict(text_emb="TEXT768"), r"text_emb must be a float tensor of shape \(B, 77, 64\) \(64 = this text encoder's width\), got .*\(1, 77, 768\)"),
    (dict(uncond_emb="UNCOND2D"), r"uncond_emb must be a float tensor of shape \(B, 77, 64\).*got .*\(77, 64\)"),
]


@pytest.mark.parametrize("kwargs,message", BAD_INPUTS, ids=[m[:28] for _, m in BAD_INPUTS])
def test_every_bad_input_is_one_clear_error(sd, kwargs, message):
    stand_ins = {"INIT": sdlib.load_image(np.zeros((64, 64, 3), np.uint8)),
                 "TEXT768": torch.zeros(1, 77, 768), "UNCOND2D": torch.zeros(77, 64)}
    kwargs = {k: stand_ins.get(v, v) if isinstance(v, str) else v for k, v in kwargs.items()}
    prompt = kwargs.pop("prompt", "a red circle")
    kwargs.setdefault("num_steps", 2)
    with pytest.raises(sdlib.SDLibError, match=message):
        sdlib.generate(sd, prompt, **kwargs)


def test_progress_bar_only_on_long_runs_and_never_under_tests(sd, capsys, monkeypatch):
    from sdlib import sampler

    sdlib.generate(sd, "a red circle", num_steps=2)  # TQDM_DISABLE=1 here (conftest)
    assert "sampling" not in capsys.readouterr().err
    monkeypatch.delenv("TQDM_DISABLE")
    sdlib.generate(sd, "a red circle", num_steps=2)  # a short run: under PROGRESS_DELAY, no bar
    assert "sampling" not in capsys.readouterr().err
    monkeypatch.setattr(sampler, "PROGRESS_DELAY", 0.0)  # as if the run were long
    sdlib.generate(sd, "a red circle", num_steps=3)
    assert "sampling" in capsys.readouterr().err
