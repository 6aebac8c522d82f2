"""Step caching (DeepCache): off it is the UNet exactly; its shallow path is the UNet's own."""
import pytest
import torch

import sdlib
from sdlib import SDLibError
from sdlib.builtin import twins
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
