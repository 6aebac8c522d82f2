"""Step caching (DeepCache): off it is the UNet exactly; its shallow path is the UNet's own."""
import pytest
import torch

import sdlib
from sdlib import SDLibError, speed
from sdlib import step_cache as step_cache_mod
from sdlib.testing import twins
from sdlib.step_cache import CachedUNet, step_cache

PROMPTS = ["a large red circle on the left", "a blue square at the top on a yellow background"]


@pytest.fixture(scope="module")
def sd():
    return sdlib.load_sd("builtin", device="cpu")


@pytest.fixture(scope="module")
def twin_v1(tmp_path_factory):
    folder = twins.build_twin("sd-v1-4", tmp_path_factory.mktemp("twin") / "v1", sample_size=8,
                              text_layers=2)
    return sdlib.load_sd(str(folder), device="cpu")


def test_interval_1_is_generate_exactly(sd):
    plain = sdlib.generate(sd, PROMPTS, num_steps=6, seed=3, output="tensor")
    with step_cache(sd, interval=1) as fast:
        cached = sdlib.generate(fast, PROMPTS, num_steps=6, seed=3, output="tensor")
    assert fast.unet.shallow_steps == 0 and fast.unet.full_steps == 6
    assert torch.equal(plain, cached)


@pytest.mark.parametrize("model", ["sd", "twin_v1"])
@pytest.mark.parametrize("branch", [1, 2])
@torch.no_grad()
def test_shallow_path_on_fresh_features_is_the_full_unet(request, model, branch):
    sd = request.getfixturevalue(model)
    g = torch.Generator().manual_seed(0)
    side = sd.unet.config.sample_size
    x_t = torch.randn(2, 4, side, side, generator=g)  # (B, 4, h, w)
    text_emb = sdlib.encode_text(sd, ["a red circle", ""])  # (2, 77, D)
    t = torch.tensor(501)
    unet = CachedUNet(sd.unet, interval=2, branch=branch)
    full = unet(x_t, t, encoder_hidden_states=text_emb).sample  # fills the cache
    shallow = unet(x_t, t - 1, encoder_hidden_states=text_emb).sample  # cached step, same input
    reference = unet._shallow(x_t, t - 1, text_emb)
    assert torch.equal(shallow, reference) and unet.shallow_steps == 1
    again = unet._shallow(x_t, t, text_emb)  # the shallow path at the full step's t
    torch.testing.assert_close(again, full, atol=1e-5, rtol=1e-5)


def test_uniform_schedule_and_a_new_run_starts_full(sd):
    with step_cache(sd, interval=3) as fast:
        first = sdlib.generate(fast, PROMPTS[:1], num_steps=10, seed=1, output="tensor")
        assert (fast.unet.full_steps, fast.unet.shallow_steps) == (4, 6)  # steps 0, 3, 6, 9 in full
        second = sdlib.generate(fast, PROMPTS[:1], num_steps=10, seed=1, output="tensor")
    assert (fast.unet.full_steps, fast.unet.shallow_steps) == (8, 12)
    assert torch.equal(first, second)  # nothing of the first run leaked into the second
    plain = sdlib.generate(sd, PROMPTS[:1], num_steps=10, seed=1, output="tensor")
    assert not torch.equal(first, plain)  # the cache changes the picture ...
    other_seed = sdlib.generate(sd, PROMPTS[:1], num_steps=10, seed=2, output="tensor")
    assert sdlib.metrics.psnr(first, plain) > sdlib.metrics.psnr(other_seed, plain)  # ... less than a new seed


def test_pipeline_runs_the_cached_unet_too(sd):
    with step_cache(sd, interval=1) as fast:
        pipe = fast.pipeline()
        out = pipe(PROMPTS[0], num_inference_steps=4, guidance_scale=7.5, output_type="pt",
                   generator=torch.Generator().manual_seed(0)).images
    ref = sd.pipeline()(PROMPTS[0], num_inference_steps=4, guidance_scale=7.5, output_type="pt",
                        generator=torch.Generator().manual_seed(0)).images
    assert torch.equal(out, ref)


@pytest.mark.parametrize("kw,match", [(dict(interval=0), "interval must be"),
                                      (dict(branch=0), "branch must be"),
                                      (dict(branch=9), "branch must be")])
def test_bad_settings_are_one_line(sd, kw, match):
    with pytest.raises(SDLibError, match=match):
        with step_cache(sd, **kw):
            pass


def test_not_a_unet_or_extra_inputs(sd):
    with pytest.raises(SDLibError, match="unet must be a diffusers UNet2DConditionModel"):
        CachedUNet(sd.vae)
    unet = CachedUNet(sd.unet)
    x = torch.zeros(1, 4, 16, 16)
    with pytest.raises(SDLibError, match="got cross_attention_kwargs"):
        unet(x, 1, encoder_hidden_states=sdlib.encode_text(sd, ""), cross_attention_kwargs={"scale": 1})


def test_up_block_inputs_and_their_similarity(sd):
    feats = step_cache_mod.up_block_inputs(sd, PROMPTS, num_steps=4, seed=0)
    assert len(feats) == len(sd.unet.up_blocks)
    side = sd.unet.config.sample_size
    channels = sd.unet.config.block_out_channels
    for f in feats:  # deepest first: (steps, 2B, C, h, w)
        assert f.shape[:2] == (4, 2 * len(PROMPTS))
    assert feats[0].shape[-1] == side // 2 ** (len(feats) - 1)  # the middle block's output
    assert feats[-1].shape[-1] == side  # the up block before it upsampled them to full resolution
    assert feats[0].shape[2] == channels[-1]
    sims = step_cache_mod.step_similarity(feats[-1])
    assert sims.shape == (3,) and bool((sims <= 1 + 1e-6).all()) and bool((sims > 0).all())
    same = torch.stack([feats[-1][0]] * 3)  # a run whose features never change
    torch.testing.assert_close(step_cache_mod.step_similarity(same), torch.ones(2))


def test_flop_counts_exact_and_the_speedup_law(sd):
    flops = speed.flop_parts(sd)  # one UNet call on a guided pair
    assert sum(flops[name] for name in speed.unet_parts(sd.unet)) == flops["total"]
    c_in = sd.unet.conv_out.in_channels
    side = sd.unet.config.sample_size
    assert flops["conv_out"] == 2 * 2 * side * side * 4 * c_in * 9  # 2 per multiply-add, 3x3 kernel
    share = step_cache_mod.shallow_share(flops, branch=1)
    assert 0 < share < step_cache_mod.shallow_share(flops, branch=2) < 1
    assert step_cache_mod.predicted_speedup(share, 1) == 1.0
    assert step_cache_mod.predicted_speedup(0.0, 5) == 5.0  # a free shallow path: N times faster
    assert step_cache_mod.predicted_speedup(1.0, 5) == 1.0  # a shallow path as dear as the UNet: nothing


def test_time_parts_cover_the_model(sd):
    secs = speed.time_parts(sd, PROMPTS[:1], num_steps=2)
    assert list(secs)[:-2] == list(speed.model_parts(sd)) and list(secs)[-2:] == ["other", "total"]
    assert all(v >= 0 for v in secs.values())
    assert secs["total"] >= sum(v for k, v in secs.items() if k not in ("other", "total")) - 1e-9
    assert all(secs[name] > 0 for name in speed.model_parts(sd))  # every part ran


def test_speed_bad_inputs(sd):
    with pytest.raises(SDLibError, match="sd must be the model bundle"):
        speed.time_parts("builtin", "a red circle")
    with pytest.raises(SDLibError, match="sd must be the model bundle"):
        speed.flop_parts(None)
    with pytest.raises(SDLibError, match="load the model on a GPU"):
        speed.gpu_variants(sd)
    assert speed.peak_tflops("NVIDIA H100 80GB HBM3") == 989.0 and speed.peak_tflops("some CPU") is None
    assert speed.peak_tflops("Tesla T4") == 65.0 and speed.peak_tflops("NVIDIA L40S") is None  # not the L4's
