"""UNet tools: the block table adds up, one prediction is DDPM's maths, and capturing
cross-attention changes nothing the UNet computes."""
import pytest
import torch
from diffusers import DDPMScheduler
from diffusers.models.attention_processor import AttnProcessor

import sdlib
from sdlib import unet_tools as U


def test_blocks_add_up_to_the_unet_and_follow_its_config(sd):
    rows = U.blocks(sd)
    cfg = sd.unet.config
    assert [r.name for r in rows] == ([f"down_blocks.{i}" for i in range(len(cfg.down_block_types))]
                                      + ["mid_block"]
                                      + [f"up_blocks.{i}" for i in range(len(cfg.up_block_types))])
    assert [r.kind for r in rows] == [*cfg.down_block_types, "UNetMidBlock2DCrossAttn",
                                      *cfg.up_block_types]
    for r in rows:  # the text enters exactly in the CrossAttn blocks
        assert (r.cross_attention > 0) == ("CrossAttn" in r.kind), r
    assert sum(r.cross_attention for r in rows) == len(U.cross_attention_layers(sd.unet))
    s, c0 = cfg.sample_size, cfg.block_out_channels[0]
    assert rows[0].in_shape == (c0, s, s) and rows[-1].out_shape == (c0, s, s)
    assert rows[len(cfg.down_block_types)].in_shape[1:] == (s // 2 ** (len(cfg.down_block_types) - 1),) * 2
    rest = sum(sdlib.n_params(m) for m in (sd.unet.conv_in, sd.unet.time_embedding, sd.unet.conv_out,
                                          sd.unet.conv_norm_out))
    assert sum(r.params for r in rows) + rest == sdlib.n_params(sd.unet)
    table = U.format_blocks(rows, total=sdlib.n_params(sd.unet))
    assert f"{rest:,}" in table and f"{sdlib.n_params(sd.unet):,}" in table


def test_predict_once_is_the_forward_process_and_its_inverse(sd):
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(2, 4, 8, 8, generator=g)
    emb = sdlib.encode_text(sd, ["a red circle", "a blue square"])
    out = U.predict_once(sd, x0, 700, emb, generator=g)
    ddpm = DDPMScheduler.from_config(sd.scheduler.config)
    t = torch.tensor([700, 700])
    assert torch.allclose(out["x_t"], ddpm.add_noise(x0, out["noise"], t), atol=1e-6)
    with torch.no_grad():
        eps = sd.unet(out["x_t"], 700, encoder_hidden_states=emb).sample
    assert torch.allclose(out["eps"], eps, atol=1e-6)
    assert torch.allclose(out["x0_pred"], sdlib.schedule.predict_x0(sd.scheduler, out["x_t"], eps, 700),
                          atol=1e-5)
    ref = ddpm.step(eps, 700, out["x_t"]).pred_original_sample  # diffusers' own x0 estimate
    assert torch.allclose(out["x0_pred"], ref, atol=1e-4)
    with pytest.raises(sdlib.SDLibError, match="t must be a whole number from 0 to 999, got 1000"):
        U.predict_once(sd, x0, 1000, emb)


def test_capture_returns_what_the_default_processor_returns(sd):
    g = torch.Generator().manual_seed(1)
    x_t = torch.randn(2, 4, 8, 8, generator=g)
    emb = sdlib.encode_text(sd, ["", "a large red circle on the left"])
    before = dict(sd.unet.attn_processors)
    with torch.no_grad():
        ref = sd.unet(x_t, 400, encoder_hidden_states=emb).sample
        # the classic processor it is written from, on the cross-attention layers only
        sd.unet.set_attn_processor({n: AttnProcessor() if n.endswith("attn2.processor") else p
                                    for n, p in before.items()})
        classic = sd.unet(x_t, 400, encoder_hidden_states=emb).sample
        sd.unet.set_attn_processor(before)
        with U.capture_cross_attention(sd) as store:
            assert all(isinstance(p, U.CaptureCrossAttnProcessor)
                       for n, p in sd.unet.attn_processors.items() if n.endswith("attn2.processor"))
            mine = sd.unet(x_t, 400, encoder_hidden_states=emb).sample
    assert torch.equal(mine, classic)
    assert torch.allclose(mine, ref, atol=1e-5)
    assert all(sd.unet.attn_processors[n] is p for n, p in before.items())  # restored
    assert len(store.sums) == len(U.cross_attention_layers(sd.unet))
    assert all(v.shape[0] == 2 and v.shape[-1] == 77 for v in store.sums.values())
    maps = store.maps(8)
    assert maps.shape == (77, 8, 8)
    assert torch.allclose(maps.sum(0), torch.ones(8, 8), atol=1e-5)  # softmax over the tokens


def test_capture_inside_generate_keeps_the_image(sd):
    kw = dict(num_steps=4, seed=0, output="tensor")
    ref = sdlib.generate(sd, "a red circle", **kw)
    with U.capture_cross_attention(sd) as store:
        mine = sdlib.generate(sd, "a red circle", **kw)
    assert (mine - ref).abs().max() < 1e-4
    scheduler = sdlib.make_scheduler(type(sd.scheduler).__name__, sd.scheduler)
    scheduler.set_timesteps(4)
    assert set(store.calls.values()) == {len(scheduler.timesteps)}  # one call per UNet step
    assert store.maps(sd.image_size).shape == (77, sd.image_size, sd.image_size)


def test_maps_average_heads_calls_and_layers():
    store = U.AttentionStore()
    g = torch.Generator().manual_seed(0)
    full = torch.rand(2 * 4, 16, 77, generator=g).softmax(-1)  # batch 2, 4 heads, 4x4 pixels
    half = torch.rand(2 * 4, 4, 77, generator=g).softmax(-1)  # a 2x2 layer
    store.add("a", full, heads=4)
    store.add("a", full * 0, heads=4)  # a second call halves the average
    store.add("b", half, heads=4)
    a = full.view(2, 4, 16, 77).mean(1)[1].T.reshape(77, 4, 4) / 2
    assert torch.allclose(store.maps(4, layers=["a"]), a, atol=1e-6)
    b = torch.nn.functional.interpolate(half.view(2, 4, 4, 77).mean(1)[1].T.reshape(77, 1, 2, 2),
                                        size=(4, 4), mode="bilinear")[:, 0]
    assert torch.allclose(store.maps(4), (a + b) / 2, atol=1e-6)
    with pytest.raises(sdlib.SDLibError, match="fresh store"):
        store.add("a", full[:4], heads=4)  # batch 1 into a store of batch 2
    with pytest.raises(sdlib.SDLibError, match="latent size of the run"):
        store.maps(5)
    with pytest.raises(sdlib.SDLibError, match="no recorded layer"):
        store.maps(4, layers=["zzz"])
    with pytest.raises(sdlib.SDLibError, match="capture_cross_attention"):
        U.AttentionStore().maps(4)
