"""Plot helpers: grid layout, titles, and the one place figures are saved."""
import torch

import sdlib


def test_show_images_grid_and_titles():
    imgs = torch.rand(5, 3, 16, 16)
    fig = sdlib.show_images(imgs, titles=list("abcde"), ncols=3)
    axes = fig.axes
    assert len(axes) == 6 and [a.get_title() for a in axes[:5]] == list("abcde")
    assert not axes[5].images  # the spare cell stays empty


def test_show_latents_one_panel_per_channel():
    fig = sdlib.show_latents(torch.randn(1, 4, 8, 8))
    assert len(fig.axes) == 4 and fig.axes[0].get_title().startswith("channel 0")


def test_save_fig(tmp_path):
    fig = sdlib.plot_curves([0, 1, 2], {"y": [0, 1, 4]}, xlabel="x")
    path = sdlib.save_fig(fig, "curve", folder=tmp_path)
    assert path == tmp_path / "curve.png" and path.stat().st_size > 1000
