"""Latent arithmetic, the detail chart and the channel explorer (called directly, no browser)."""
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

import sdlib
from sdlib import explore_latents, latents


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_compression_is_computed_from_the_model(sd):
    image, latent, factor = latents.compression(sd)
    z = sdlib.encode(sd, explore_latents.detail_chart(sd.image_size)[0])
    assert latent == tuple(z.shape) and image == (1, 3, sd.image_size, sd.image_size)
    assert factor == 48.0  # 3 * 8 * 8 / 4
    assert latents.compression(sd, 48, 96)[1] == (1, 4, 6, 12)


def test_lerp_and_slerp_endpoints_and_norm():
    a, b = randn(2, 4, 8, 8, seed=0), randn(2, 4, 8, 8, seed=1)
    for blend in (latents.lerp, latents.slerp):
        assert torch.allclose(blend(a, b, 0.0), a, atol=1e-6)
        assert torch.allclose(blend(a, b, 1.0), b, atol=1e-6)
    mid_lerp, mid_slerp = latents.lerp(a, b, 0.5), latents.slerp(a, b, 0.5)
    norm = lambda z: z.flatten(1).norm(dim=1)  # noqa: E731
    assert (norm(mid_lerp) < 0.85 * norm(a)).all()  # straight lines cut through the middle
    assert torch.allclose(norm(mid_slerp), (norm(a) + norm(b)) / 2, rtol=0.05)
    # slerp of two orthogonal unit vectors at 1/2 is their normalised sum
    e0, e1 = torch.zeros(1, 4, 1, 1), torch.zeros(1, 4, 1, 1)
    e0[0, 0], e1[0, 1] = 1, 1
    assert torch.allclose(latents.slerp(e0, e1, 0.5), (e0 + e1) / 2**0.5, atol=1e-6)
    assert torch.allclose(latents.slerp(a, 2 * a, 0.25), latents.lerp(a, 2 * a, 0.25), atol=1e-5)


def test_blend_shape_mismatch_is_one_clear_error():
    with pytest.raises(sdlib.SDLibError, match="cannot blend latents of shapes"):
        latents.slerp(randn(1, 4, 8, 8), randn(1, 4, 4, 4), 0.5)


def test_edit_channel_touches_one_channel_only():
    z = randn(1, 4, 8, 8)
    out = latents.edit_channel(z, 2, scale=-1.0, shift=0.5)
    assert torch.equal(out[:, [0, 1, 3]], z[:, [0, 1, 3]])
    assert torch.allclose(out[:, 2], 0.5 - z[:, 2])
    assert torch.equal(z, randn(1, 4, 8, 8))  # the input is not modified
    assert torch.count_nonzero(latents.edit_channel(z, 0, scale=0.0)[:, 0]) == 0
    with pytest.raises(sdlib.SDLibError, match=r"channel must be in 0..3"):
        latents.edit_channel(z, 4)


def test_detail_chart_has_the_advertised_regions():
    img, boxes = explore_latents.detail_chart(64)
    arr = np.asarray(img).astype(int)
    assert img.size == (64, 64)
    assert set(boxes) == {"smooth gradient", "flat shape", "small text", "fine lines"}
    l, t, r, b = boxes["fine lines"]
    lines = arr[t:b, l:r, 0]
    assert set(np.unique(lines)) == {0, 255} and (np.abs(np.diff(lines, axis=1)) == 255).all()
    l, t, r, b = boxes["small text"]
    assert (arr[t:b, l:r] < 128).any() and (arr[t:b, l:r] == 255).mean() > 0.5  # dark glyphs on white
    l, t, r, b = boxes["smooth gradient"]
    assert np.abs(np.diff(arr[t:b, l:r], axis=1)).max() <= 8  # no edges at all
    with pytest.raises(sdlib.SDLibError, match="at least 32 pixels"):
        explore_latents.detail_chart(16)


def test_channel_view_decodes_the_edit(sd):
    img, _ = explore_latents.detail_chart(sd.image_size)
    z = sdlib.encode(sd, img)
    fig, edited, image = explore_latents.channel_view(sd, z, 1, scale=1.0, shift=0.0, original=img)
    assert torch.equal(edited, z) and torch.allclose(image, sdlib.decode(sd, z), atol=1e-5)
    assert len(fig.axes) == 6
    plt.close(fig)
    fig, edited, image = explore_latents.channel_view(sd, z, 3, scale=0.0, shift=1.0)
    assert torch.all(edited[:, 3] == 1.0) and torch.equal(edited[:, :3], z[:, :3])
    assert torch.allclose(image, sdlib.decode(sd, edited), atol=1e-5)
    assert len(fig.axes) == 5  # no original given
    plt.close(fig)


def test_channel_explorer_builds_and_updates(sd, capsys):
    import ipywidgets as W

    img, _ = explore_latents.detail_chart(sd.image_size)
    w = explore_latents.channel_explorer(sd, {"chart": img, "grey": np.full((40, 40, 3), 128, np.uint8)})
    assert isinstance(w, W.interactive)
    controls = {c.description: c for c in w.children if hasattr(c, "description")}
    assert list(controls["image"].options) == ["chart", "grey"]
    assert list(controls["channel"].options) == [0, 1, 2, 3]
    before = len(plt.get_fignums())
    w.f(image="grey", channel=2, scale=0.0, shift=-1.0)  # the update function, as a slider move calls it
    assert len(plt.get_fignums()) == before  # drew, displayed and closed its figure
    assert "Figure" in capsys.readouterr().out
    with pytest.raises(sdlib.SDLibError, match="at least one image"):
        explore_latents.channel_explorer(sd, {})
