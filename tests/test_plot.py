"""Plot helpers: grid layout, titles, and the one place figures are saved."""
import io

import numpy as np
import torch
from PIL import Image

import sdlib


def test_show_images_grid_and_titles():
    imgs = torch.rand(5, 3, 16, 16)
    fig = sdlib.show_images(imgs, titles=list("abcde"), ncols=3)
    axes = fig.axes
    assert len(axes) == 6 and [a.get_title() for a in axes[:5]] == list("abcde")
    assert not axes[5].images  # the spare cell stays empty


def test_show_images_draws_the_converted_pixels():
    imgs = [torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0)), torch.randn(8, 8)]
    fig = sdlib.show_images(imgs, cmap="magma")
    drawn = [ax.images[0] for ax in fig.axes]
    assert np.array_equal(drawn[0].get_array(), sdlib.images.to_array(imgs[0]))  # (8, 8, 3) uint8
    assert np.allclose(drawn[1].get_array(), imgs[1].numpy()) and drawn[1].get_cmap().name == "magma"


def test_show_latents_one_panel_per_channel():
    fig = sdlib.show_latents(torch.randn(1, 4, 8, 8))
    assert len(fig.axes) == 4 and fig.axes[0].get_title().startswith("channel 0")


def test_show_latents_centres_each_channel_on_zero():
    z = torch.stack([torch.full((8, 8), 0.5), torch.linspace(-2, 1, 64).reshape(8, 8)])  # (2, 8, 8)
    z[0, 0, 0] = 1.0  # channel 0 all positive: its smallest value must not be drawn blue
    fig = sdlib.show_latents(z)
    assert [ax.images[0].get_clim() for ax in fig.axes] == [(-1.0, 1.0), (-2.0, 2.0)]


def png_pixels(source):
    return np.asarray(Image.open(source).convert("RGB"))


def test_save_fig_writes_the_figure_where_asked(tmp_path, monkeypatch):
    fig = sdlib.plot_curves([0, 1, 2], {"y": [0, 1, 4]}, xlabel="x")
    reference = io.BytesIO()
    fig.savefig(reference, format="png", dpi=100, bbox_inches="tight")  # what save_fig promises
    path = sdlib.save_fig(fig, "curve", folder=tmp_path / "given")
    assert path == tmp_path / "given" / "curve.png"
    assert np.array_equal(png_pixels(path), png_pixels(reference))
    monkeypatch.chdir(tmp_path)  # no folder: figures/ under the working directory, not the package
    path = sdlib.save_fig(fig, "curve")
    assert path == tmp_path / "figures" / "curve.png" and path.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figures", "given"]
