"""The MM-DiT pieces written out (`sdlib.models.mmdit`) equal SD3Transformer2DModel's own layers, on the
miniature's architecture with jittered random weights (away from adaLN-Zero's identity start), cut
into SD3's own 2 x 2 patches (the shipped miniature uses 1 x 1, the plain case: `sdlib.builtin.sd3`)."""
import pytest
import torch

import sdlib
from sdlib.builtin import sd3 as factory
from sdlib.models import mmdit
from sdlib.models.sd3 import joint_text


@pytest.fixture(scope="module")
def parts():
    from diffusers import SD3Transformer2DModel

    parts = factory.new_parts(0)
    parts["transformer"] = factory.dit_init(SD3Transformer2DModel(
        **{**factory.TRANSFORMER_CONFIG, "patch_size": 2, "pos_embed_max_size": 16}))  # SD3's patches
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for p in parts["transformer"].parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return parts


@pytest.fixture(scope="module")
def inputs(parts):
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(0, 49406, (2, 77), generator=g)
    with torch.no_grad():
        text = joint_text([parts["text_encoder"], parts["text_encoder_2"]], ids, max_sequence_length=8,
                          joint_attention_dim=factory.TRANSFORMER_CONFIG["joint_attention_dim"])
    return torch.randn(2, 4, 16, 16, generator=g), torch.tensor([250.0, 750.0]), text


def test_patchify_by_the_conv_and_unpatchify_by_the_einsum(parts, inputs):
    transformer, (x, _, _) = parts["transformer"], inputs
    conv = transformer.pos_embed.proj  # Conv2d(4, D, kernel 2, stride 2)
    patches = mmdit.patchify(x, 2)  # (2, 64, 16)
    assert patches.shape == (2, 64, 16)
    by_matmul = patches @ conv.weight.reshape(conv.out_channels, -1).T + conv.bias
    with torch.no_grad():
        by_conv = conv(x).flatten(2).transpose(1, 2)  # (2, 64, D)
    assert torch.allclose(by_matmul, by_conv, atol=1e-5)
    tokens = torch.randn(2, 64, 2 * 2 * 4)
    expected = torch.einsum("nhwpqc->nchpwq", tokens.reshape(2, 8, 8, 2, 2, 4)).reshape(2, 4, 16, 16)
    assert torch.equal(mmdit.unpatchify(tokens, 2, 4), expected)
    with pytest.raises(sdlib.SDLibError, match="multiples of p = 3"):
        mmdit.patchify(x, 3)


def test_modulation_and_joint_attention_are_the_first_blocks(parts, inputs):
    transformer, (x, t, text) = parts["transformer"], inputs
    block = transformer.transformer_blocks[0]
    with torch.no_grad():
        h = transformer.pos_embed(x)  # (2, 64, D)
        temb = transformer.time_text_embed(t, text.pooled)  # (2, D)
        c = transformer.context_embedder(text.tokens)  # (2, 85, D)
        mod, cmod = mmdit.modulation(block.norm1, temb), mmdit.modulation(block.norm1_context, temb)
        norm_x, gate, *_ = block.norm1(h, emb=temb)
        assert torch.allclose(mmdit.modulate(block.norm1.norm(h), mod["shift_msa"], mod["scale_msa"]), norm_x, atol=1e-6)
        assert torch.equal(mod["gate_msa"], gate)
        norm_c = mmdit.modulate(block.norm1_context.norm(c), cmod["shift_msa"], cmod["scale_msa"])
        x_out, c_out, P = mmdit.joint_attention(block.attn, norm_x, norm_c)
        expected_x, expected_c = block.attn(hidden_states=norm_x, encoder_hidden_states=norm_c)
        bias = torch.zeros(64 + 85)
        bias[-1] = 2.0
        with_bias = mmdit.joint_attention(block.attn, norm_x, norm_c, key_bias=bias)
        fused = mmdit.joint_attention(block.attn, norm_x, norm_c, key_bias=bias, probabilities=False)
    assert fused[2] is None  # the fused path forms no P, and gives what the written-out one gives
    assert torch.allclose(fused[0], with_bias[0], atol=1e-5) and torch.allclose(fused[1], with_bias[1], atol=1e-5)
    assert not torch.allclose(with_bias[0], x_out, atol=1e-5)  # the bias counts
    assert P.shape == (2, block.attn.heads, 64 + 85, 64 + 85) and torch.allclose(P.sum(-1), torch.ones(()))
    assert torch.allclose(x_out, expected_x, atol=1e-5) and torch.allclose(c_out, expected_c, atol=1e-5)


def test_capture_records_every_block_and_changes_nothing(parts, inputs):
    transformer, (x, t, text) = parts["transformer"], inputs
    kw = dict(hidden_states=x, timestep=t, encoder_hidden_states=text.tokens, pooled_projections=text.pooled)
    with torch.no_grad():
        expected = transformer(**kw).sample
        with mmdit.capture_joint_attention(transformer) as store:
            got = transformer(**kw).sample
    assert torch.allclose(got, expected, atol=1e-5)
    assert store.calls == [f"transformer_blocks.{k}" for k in range(len(transformer.transformer_blocks))]
    maps = mmdit.token_maps(store, 8, row=0)  # (85, 8, 8): the mean over the blocks
    assert maps.shape == (85, 8, 8) and bool((maps.sum(0) <= 1 + 1e-6).all())
    assert type(transformer.attn_processors["transformer_blocks.0.attn.processor"]).__name__ == "JointAttnProcessor2_0"
    with pytest.raises(sdlib.SDLibError, match="transformer must be SD3's"):
        with mmdit.capture_joint_attention(parts["text_encoder"]):
            pass
