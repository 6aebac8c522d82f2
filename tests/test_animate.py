"""Animations: a looping GIF with the right frames, layout and timing; a JS player; clear errors."""
import io

import numpy as np
import pytest
import torch
from IPython.display import HTML
from IPython.display import Image as IPImage
from PIL import Image

import sdlib
from sdlib import animate as A


def solid(rgb, size=16):
    return Image.new("RGB", (size, size), rgb)


def frames(n=3):
    # frame k: a red panel whose green rises with k, and a blue (3, H, W) tensor panel
    return [[solid((200, 40 * k, 0)), torch.tensor([0.0, 0.0, 1.0])[:, None, None].expand(3, 16, 16)]
            for k in range(n)]


def test_gif_frames_layout_timing_and_palette():
    data = A.to_gif(frames(3), titles=["a", "b", "c"], labels=["x_t", "x0_pred"], fps=5, scale=2)
    gif = Image.open(io.BytesIO(data))
    assert gif.format == "GIF" and gif.n_frames == 3 and gif.info["loop"] == 0
    assert gif.size == (2 * 32 + A.GAP, 32 + 2 * A.STRIP)
    durations = []
    for k in range(3):
        gif.seek(k)
        durations.append(gif.info["duration"])
        rgb = np.asarray(gif.convert("RGB"))
        top = 2 * A.STRIP
        assert np.abs(rgb[top + 5, 5].astype(int) - (200, 40 * k, 0)).max() <= 8  # left panel
        assert np.abs(rgb[top + 5, 32 + A.GAP + 5].astype(int) - (0, 0, 255)).max() <= 8  # right
        assert (rgb[:A.STRIP] < 128).any()  # some dark pixels: the title is drawn
    assert durations == [200, 200, 200 * 5]  # the last frame is held
    noisy = [torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(k)) for k in range(4)]
    small, full = A.to_gif(noisy, colors=16), A.to_gif(noisy, colors=256)
    assert len(small) < 0.8 * len(full)
    assert len(Image.open(io.BytesIO(small)).convert("RGB").getcolors(10**4)) <= 16


def test_single_images_and_no_captions_and_big_panels_shrink():
    data = A.to_gif([solid((0, 255, 0)), solid((255, 0, 0))], scale=1)
    gif = Image.open(io.BytesIO(data))
    assert gif.size == (16, 16) and gif.n_frames == 2
    big = Image.open(io.BytesIO(A.to_gif([[solid((0, 0, 255), 512)] * 2] * 2)))  # SD's 512 px
    assert big.size == (2 * 128 + A.GAP, 128)


def test_animate_gif_and_jshtml():
    shown = A.animate(frames(2), fps=4, zoom=3)
    assert isinstance(shown, IPImage) and shown.format == "gif" and shown.data[:6] == b"GIF89a"
    assert shown.width == 3 * (2 * 16 + A.GAP)  # a small file, enlarged on screen
    html = A.animate(frames(2), titles=["1", "2"], format="jshtml")
    assert isinstance(html, HTML) and "<script" in html.data and html.data.count("data:image/png") == 2


def test_bad_input_is_one_clear_error():
    with pytest.raises(sdlib.SDLibError, match="no frames"):
        A.to_gif([])
    with pytest.raises(sdlib.SDLibError, match="2 titles for 3 frames"):
        A.to_gif(frames(3), titles=["a", "b"])
    with pytest.raises(sdlib.SDLibError, match="same number of panels"):
        A.to_gif([[solid((0, 0, 0))], [solid((0, 0, 0)), solid((0, 0, 0))]])
    with pytest.raises(sdlib.SDLibError, match="unknown animation format"):
        A.animate(frames(1), format="mp4")
