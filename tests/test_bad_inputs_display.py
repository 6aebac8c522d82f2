"""Every public function of the display side (images, plot, animate, the explorers, the checker)
answers a bad argument with one SDLibError that names the argument and what is allowed: raised by
sdlib itself, not a traceback from inside torch, PIL or matplotlib, and never a silent success."""
import re
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image

import sdlib
from sdlib import animate as A
from sdlib import explore_embeddings as XE
from sdlib import explore_flow as XF
from sdlib import explore_guidance as XG
from sdlib import explore_latents as XL
from sdlib import explore_noise as XN
from sdlib import explore_sd3 as X3
from sdlib import images as IM
from sdlib import plot as P
from sdlib.builtin import checker as C
from sdlib.builtin import scenes as S
from sdlib.builtin import sd3 as SD3

IMAGE_KINDS = ("a path, a PIL image, an array (H, W) / (H, W, 3) / (H, W, 4), or a tensor "
               "(3, H, W) / (1, 3, H, W) in [0, 1]")
BACKGROUNDS = ("scene_or_background must be None, a Scene, a Background, an RGB triple in 0..255 "
               "or one of red, green, blue, yellow, purple, orange, white, black, grey; got ")
SCHEDULER = "must be a diffusers scheduler, e.g. sd.scheduler or sdlib.make_scheduler('euler', sd.scheduler)"
NOT_SD = "sd must be the model bundle from sdlib.load_sd() (tokenizer, text encoder, VAE, UNet, scheduler), got "


@pytest.fixture(scope="module")
def x(sd, tmp_path_factory):
    fig, ax = plt.subplots()
    yield SimpleNamespace(
        img=Image.new("RGB", (16, 16), (200, 40, 0)), small=Image.new("RGB", (8, 8)),
        z=sdlib.encode(sd, Image.new("RGB", (64, 64))),  # (1, 4, 8, 8) on any model
        fig=fig, ax=ax, scene=S.make_scene("red", "circle"), flow=sdlib.load_sd("builtin-flow", device="cpu"),
        sd3=sdlib.load_sd(str(SD3.build_sd3(tmp_path_factory.mktemp("sd3") / "m")), device="cpu"),
        file=tmp_path_factory.mktemp("f") / "a_file")
    plt.close(fig)


# (function, call, the message it must give, exactly, from its start)
CASES = [
    ("load_image", lambda sd, x: IM.load_image(42), f"image must be {IMAGE_KINDS}; got int."),
    ("check_unit_range", lambda sd, x: IM.check_unit_range("x", torch.full((1, 3, 2, 2), -1.0)),
     "x must hold values in [0, 1], got values in [-1, -1]; a VAE output in [-1, 1] converts with "
     "sdlib.images.from_vae_range."),
    ("load_image", lambda sd, x: IM.load_image(x.img, size=0),
     "size must be None, a whole number of pixels >= 1, or (width, height), got 0."),
    ("load_image", lambda sd, x: IM.load_image(x.img, size=(64, "x")),
     "size must be None, a whole number of pixels >= 1, or (width, height), got (64, 'x')."),
    ("load_image", lambda sd, x: IM.load_image(np.zeros((8, 8, 5), np.uint8)),
     "image must be an array (H, W), (H, W, 3) or (H, W, 4), got shape (8, 8, 5)."),
    ("load_image", lambda sd, x: IM.load_image(np.zeros((8, 8, 3), np.int64)),
     "image must be a uint8 array (0..255) or a float array in [0, 1], got dtype int64; "
     "e.g. use arr.astype(np.uint8)."),
    ("load_image", lambda sd, x: IM.load_image(np.full((8, 8, 3), 255.0)),
     "image must hold values in [0, 1], got values in [255, 255]; divide 0..255 values by 255."),
    ("load_image", lambda sd, x: IM.load_image(torch.rand(2, 3, 8, 8)),
     "image must be one image tensor (3, H, W) or (1, 3, H, W), got (2, 3, 8, 8); pick one, e.g. x[0]."),
    ("load_image", lambda sd, x: IM.load_image("/nonexistent/picture.png"),
     "cannot open image '/nonexistent/picture.png': "),
    ("to_array", lambda sd, x: IM.to_array(None), f"image must be {IMAGE_KINDS}; got NoneType."),
    ("to_array", lambda sd, x: IM.to_array(torch.rand(4, 8, 8)),
     "image must be one image tensor (3, H, W) or (1, 3, H, W), got (4, 8, 8)."),
    ("to_array", lambda sd, x: IM.to_array(np.array([["a"]])),
     "image must be a map of numbers, got dtype <U1."),
    ("to_tensor", lambda sd, x: IM.to_tensor(42), f"images must be {IMAGE_KINDS}; got int."),
    ("to_tensor", lambda sd, x: IM.to_tensor([]), "images must hold at least one image, got an empty list."),
    ("to_tensor", lambda sd, x: IM.to_tensor(torch.zeros(1, 4, 8, 8)),
     "images must be an image tensor of shape (B, 3, H, W), got (1, 4, 8, 8)."),
    ("to_tensor", lambda sd, x: IM.to_tensor([x.img, x.small]),
     "images have different sizes: [(16, 16), (8, 8)]."),
    ("to_tensor", lambda sd, x: IM.to_tensor([x.img, None]),
     f"images[1] must be {IMAGE_KINDS}; got NoneType."),
    ("to_tensor", lambda sd, x: IM.to_tensor(np.zeros((2, 8, 8, 4), np.uint8)),
     "images must be a uint8 batch (B, H, W, 3), got (2, 8, 8, 4)."),
    ("to_vae_range", lambda sd, x: IM.to_vae_range(x.img),
     "x must be a torch tensor of images (B, 3, H, W), got Image; convert with sdlib.to_tensor."),
    ("to_vae_range", lambda sd, x: IM.to_vae_range(torch.full((1, 3, 4, 4), 255.0)),
     "x must hold values in [0, 1], got values in [255, 255]; divide 0..255 values by 255."),
    ("from_vae_range", lambda sd, x: IM.from_vae_range(np.zeros((3, 4, 4))),
     "x must be a torch tensor of images (B, 3, H, W), got ndarray; convert with sdlib.to_tensor."),
    ("to_pil", lambda sd, x: IM.to_pil(x.img),
     "x must be a torch tensor of images (B, 3, H, W), got Image; convert with sdlib.to_tensor."),
    ("to_pil", lambda sd, x: IM.to_pil(torch.zeros(1, 4, 8, 8)),
     "x must be an image tensor (B, 3, H, W) or (3, H, W), got (1, 4, 8, 8)."),
    ("to_pil", lambda sd, x: IM.to_pil(torch.full((3, 4, 4), -1.0)),
     "x must hold values in [0, 1], got values in [-1, -1]; a VAE output in [-1, 1] converts with "
     "sdlib.images.from_vae_range."),
    ("max_pixel_diff", lambda sd, x: IM.max_pixel_diff(x.img, None),
     f"b must be {IMAGE_KINDS}; got NoneType."),
    ("max_pixel_diff", lambda sd, x: IM.max_pixel_diff(x.img, x.small),
     "images differ in size: (16, 16) vs (8, 8)."),

    ("show_images", lambda sd, x: P.show_images([]),
     "images must hold at least one image, got an empty list."),
    ("show_images", lambda sd, x: P.show_images(42),
     "images must be an image, a list of images or a batch tensor (B, 3, H, W), got int."),
    ("show_images", lambda sd, x: P.show_images([x.img, x.img], titles="ab"),
     "titles must be None or a list of 2 titles, one per image, got 'ab'; for one heading over the grid "
     "use title=."),
    ("show_images", lambda sd, x: P.show_images([x.img, x.img], titles=["a"]),
     "titles must be None or a list of 2 titles, one per image, got ['a']"),
    ("show_images", lambda sd, x: P.show_images([x.img], ncols=0),
     "ncols must be a whole number >= 1, got 0."),
    ("show_images", lambda sd, x: P.show_images([x.img], cell=0),
     "cell must be a number above 0 up to 12, got 0.0."),
    ("show_images", lambda sd, x: P.show_images([x.img], cell=20),
     "cell must be a number above 0 up to 12, got 20.0."),
    ("show_images", lambda sd, x: P.show_images([x.img], cmap="no-such-map"),
     "cmap must be None or a matplotlib colour map name like 'gray', 'magma' or 'RdBu_r', "
     "got 'no-such-map'."),
    ("show_images", lambda sd, x: P.show_images([x.img], title=3),
     "title must be a string or None, got int."),
    ("show_images", lambda sd, x: P.show_images([x.img, torch.rand(4, 8, 8)]),
     "images[1] must be one image tensor (3, H, W) or (1, 3, H, W), got (4, 8, 8)."),
    ("show_latents", lambda sd, x: P.show_latents(np.zeros((4, 8, 8))),
     "latents must be one latent tensor (C, h, w) or (1, C, h, w), got ndarray."),
    ("show_latents", lambda sd, x: P.show_latents(torch.zeros(2, 4, 8, 8)),
     "latents must be one latent tensor (C, h, w) or (1, C, h, w), got (2, 4, 8, 8); for a batch pick one, "
     "e.g. latents[0]."),
    ("draw_image", lambda sd, x: P.draw_image(x.fig, x.img),
     "ax must be a matplotlib Axes (e.g. from plt.subplots), got Figure."),
    ("draw_image", lambda sd, x: P.draw_image(x.ax, x.img, vmin="0"), "vmin must be a number, got '0'."),
    ("draw_image", lambda sd, x: P.draw_image(x.ax, x.img, cmap=3),
     "cmap must be None or a matplotlib colour map name like 'gray', 'magma' or 'RdBu_r', got 3."),
    ("plot_curves", lambda sd, x: P.plot_curves([0, 1], {}),
     "curves must be a non-empty dict {label: y values}, got {}."),
    ("plot_curves", lambda sd, x: P.plot_curves([0, 1], [1, 2]),
     "curves must be a non-empty dict {label: y values}, got [1, 2]."),
    ("plot_curves", lambda sd, x: P.plot_curves([0, 1], {"y": [1, 2, 3]}),
     "curves['y'] must be a 1-D sequence of numbers of length 2 (one per x), got shape (3,)."),
    ("plot_curves", lambda sd, x: P.plot_curves([0, 1], {"y": ["a", "b"]}),
     "curves['y'] must be a 1-D sequence of numbers of length 2 (one per x), got ['a', 'b']."),
    ("plot_curves", lambda sd, x: P.plot_curves([[0, 1]], {"y": [1]}),
     "x must be a 1-D sequence of numbers, got shape (1, 2)."),
    ("plot_curves", lambda sd, x: P.plot_curves([0, 1], {"y": [1, 2]}, logy="yes"),
     "logy must be True or False, got 'yes'."),
    ("plot_curves", lambda sd, x: P.plot_curves([0, 1], {"y": [1, 2]}, width=0),
     "width must be a number above 0 up to 12, got 0.0."),
    ("plot_curves", lambda sd, x: P.plot_curves([0, 1], {"y": [1, 2]}, xlabel=5),
     "xlabel must be a string or None, got int."),
    ("plot_bars", lambda sd, x: P.plot_bars({}),
     "groups must be a non-empty dict {name: {label: value}}, got {}."),
    ("plot_bars", lambda sd, x: P.plot_bars({"a": [1, 2]}),
     "groups must be a non-empty dict {name: {label: value}}, got {'a': [1, 2]}."),
    ("plot_bars", lambda sd, x: P.plot_bars({"a": {"x": 1}, "b": {"y": 1}}),
     "groups must all have the same labels, in the same order."),
    ("plot_bars", lambda sd, x: P.plot_bars({"a": {"x": "one"}}),
     "groups['a'] must be a 1-D sequence of numbers, got ['one']."),
    ("plot_bars", lambda sd, x: P.plot_bars({"a": {"x": 1}}, width=20),
     "width must be a number above 0 up to 12, got 20.0."),
    ("plot_bars", lambda sd, x: P.plot_bars({"a": {"x": 1}}, title=3),
     "title must be a string or None, got int."),
    ("save_fig", lambda sd, x: P.save_fig(x.img, "x"),
     "fig must be a matplotlib Figure (e.g. what sdlib.show_images returns), got Image."),
    ("save_fig", lambda sd, x: P.save_fig(x.fig, "a/b"),
     "name must be a file name without folder or .png, like 'prompts' (letters, digits, '_', '-', "
     "'.'), got 'a/b'."),
    ("save_fig", lambda sd, x: P.save_fig(x.fig, "x.png"),
     "name must be a file name without folder or .png, like 'prompts' (letters, digits, '_', '-', "
     "'.'), got 'x.png'."),
    ("save_fig", lambda sd, x: P.save_fig(x.fig, "x", folder=3),
     "folder must be None, a string or a Path, got int."),
    ("save_fig", lambda sd, x: P.save_fig(x.fig, "x", folder=(x.file.write_text(""), x.file)[1]),
     "folder '{file}' is a file, not a folder."),

    ("compose", lambda sd, x: A.compose([]), "panels must hold at least one image, got an empty list."),
    ("compose", lambda sd, x: A.compose([x.img, x.small]),
     "panels must all have one size, got [(16, 16), (8, 8)] (width, height)."),
    ("compose", lambda sd, x: A.compose([x.img], labels=["a", "b"]), "2 labels for 1 panels."),
    ("compose", lambda sd, x: A.compose([x.img], labels="a"),
     "labels must be None or a list of strings, one per panel, got 'a'."),
    ("compose", lambda sd, x: A.compose([x.img], scale=0),
     "scale must be a whole number from 1 to 8, got 0."),
    ("compose", lambda sd, x: A.compose([x.img], scale=1.5),
     "scale must be a whole number from 1 to 8, got 1.5."),
    ("compose", lambda sd, x: A.compose([x.img], max_side=0), "max_side must be a whole number >= 8, got 0."),
    ("compose", lambda sd, x: A.compose([42]), f"panels[0] must be {IMAGE_KINDS}; got int."),
    ("to_gif", lambda sd, x: A.to_gif([]), "no frames to animate."),
    ("to_gif", lambda sd, x: A.to_gif(x.img),
     "frames must be a list of frames (each a list of panels, or one image), got Image."),
    ("to_gif", lambda sd, x: A.to_gif([x.img] * 3, titles=["a", "b"]), "2 titles for 3 frames."),
    ("to_gif", lambda sd, x: A.to_gif([x.img], titles="a"),
     "titles must be None or a list of strings, one per frame, got 'a'."),
    ("to_gif", lambda sd, x: A.to_gif([x.img], fps=0), "fps must be a number above 0 up to 50, got 0.0."),
    ("to_gif", lambda sd, x: A.to_gif([x.img], fps=100), "fps must be a number above 0 up to 50, got 100.0."),
    ("to_gif", lambda sd, x: A.to_gif([x.img], hold_last=-1),
     "hold_last must be a whole number >= 0, got -1."),
    ("to_gif", lambda sd, x: A.to_gif([x.img], colors=1),
     "colors must be a whole number from 2 to 256, got 1."),
    ("to_gif", lambda sd, x: A.to_gif([x.img], colors=300),
     "colors must be a whole number from 2 to 256, got 300."),
    ("to_gif", lambda sd, x: A.to_gif([[x.img], [x.img, x.img]]),
     "frames differ in size: give every frame the same number of panels."),
    ("to_jshtml", lambda sd, x: A.to_jshtml([]), "no frames to animate."),
    ("to_jshtml", lambda sd, x: A.to_jshtml([x.img], fps=-1),
     "fps must be a number above 0 up to 50, got -1.0."),
    ("to_jshtml", lambda sd, x: A.to_jshtml([[x.img], [x.img, x.img]]),
     "frames differ in size: give every frame the same number of panels."),
    ("animate", lambda sd, x: A.animate([x.img], format="mp4"),
     "unknown animation format 'mp4': use 'gif' or 'jshtml'."),
    ("animate", lambda sd, x: A.animate([x.img], zoom=0), "zoom must be a whole number from 1 to 8, got 0."),
    ("animate", lambda sd, x: A.animate([x.img], zoom=2.5),
     "zoom must be a whole number from 1 to 8, got 2.5."),

    ("detail_chart", lambda sd, x: XL.detail_chart(16),
     "size must be an even whole number, at least 32 pixels, got 16."),
    ("detail_chart", lambda sd, x: XL.detail_chart(65),
     "size must be an even whole number, at least 32 pixels, got 65."),
    ("detail_chart", lambda sd, x: XL.detail_chart("64"),
     "size must be an even whole number, at least 32 pixels, got '64'."),
    ("channel_view", lambda sd, x: XL.channel_view("sd", x.z, 0), NOT_SD + "str."),
    ("channel_view", lambda sd, x: XL.channel_view(sd, x.z[0], 0),
     "latents must be one latent tensor (1, 4, h, w) from sdlib.encode, got (4, 8, 8)."),
    ("channel_view", lambda sd, x: XL.channel_view(sd, torch.cat([x.z, x.z]), 0),
     "latents must be one latent tensor (1, 4, h, w) from sdlib.encode, got (2, 4, 8, 8)."),
    ("channel_view", lambda sd, x: XL.channel_view(sd, x.z, 4),
     "channel must be a whole number from 0 to 3, got 4."),
    ("channel_view", lambda sd, x: XL.channel_view(sd, x.z, 1.0),
     "channel must be a whole number from 0 to 3, got 1.0."),
    ("channel_view", lambda sd, x: XL.channel_view(sd, x.z, 0, scale="big"),
     "scale must be a number, got 'big'."),
    ("channel_view", lambda sd, x: XL.channel_view(sd, x.z, 0, shift=float("nan")),
     "shift must be a number, got nan."),
    ("channel_view", lambda sd, x: XL.channel_view(sd, x.z, 0, original=42),
     f"original must be {IMAGE_KINDS}; got int."),
    ("channel_view", lambda sd, x: XL.channel_view(sd, x.z, 0, title=1),
     "title must be a string or None, got int."),
    ("channel_explorer", lambda sd, x: XL.channel_explorer(sd, {}),
     "images must be a non-empty dict {name: image} or list of images; channel_explorer needs at least one "
     "image, got an empty one."),
    ("channel_explorer", lambda sd, x: XL.channel_explorer(sd, x.img),
     "images must be a non-empty dict {name: image} or list of images; channel_explorer needs at least one "
     "image, got Image."),
    ("channel_explorer", lambda sd, x: XL.channel_explorer(sd, [42]),
     f"images['image 0'] must be {IMAGE_KINDS}; got int."),
    ("channel_explorer", lambda sd, x: XL.channel_explorer(sd, [x.img], scale_range=(3, -3)),
     "scale_range must be (low, high) with low <= 1 <= high and low < high (the slider starts at 1: no "
     "change), got (3, -3)."),
    ("channel_explorer", lambda sd, x: XL.channel_explorer(sd, [x.img], shift_range=(1, 2)),
     "shift_range must be (low, high) with low <= 0 <= high and low < high (the slider starts at 0: no "
     "change), got (1, 2)."),
    ("channel_explorer", lambda sd, x: XL.channel_explorer(sdlib.load_sd, [x.img]), NOT_SD + "function."),

    ("explore_guidance.render", lambda sd, x: XG.render(None, "a"), NOT_SD + "NoneType."),
    ("explore_guidance.render", lambda sd, x: XG.render(sd, "a", loss="sharp"),
     "unknown loss 'sharp'; choose one of blue, dark left half, bright (0.9)."),
    ("explore_guidance.render", lambda sd, x: XG.render(sd, "a", loss_scale=-1),
     "loss_scale must be a number >= 0, got -1.0."),
    ("explore_guidance.render", lambda sd, x: XG.render(sd, "a", loss_every=0),
     "loss_every must be a whole number >= 1, got 0."),
    # the rest are generate's arguments, checked (and worded) by generate
    ("explore_guidance.render", lambda sd, x: XG.render(sd, 42, num_steps=1),
     "prompt must be a string or a non-empty list of strings, got 42."),
    ("explore_guidance.render", lambda sd, x: XG.render(sd, "a", num_steps=0),
     "num_steps must be a whole number"),
    ("explore_guidance.render", lambda sd, x: XG.render(sd, "a", guidance_scale="high", num_steps=1),
     "guidance_scale must be a number, got 'high'."),
    ("explore_guidance.explorer", lambda sd, x: XG.explorer("sd"), NOT_SD + "str."),
    ("explore_guidance.explorer", lambda sd, x: XG.explorer(sd, prompt=["a", "b"]),
     "prompt must be a string (the text box's start), got ['a', 'b']."),
    ("explore_guidance.explorer", lambda sd, x: XG.explorer(sd, negative_prompt=None),
     "negative_prompt must be a string (the text box's start), got None."),
    ("explore_guidance.explorer", lambda sd, x: XG.explorer(sd, seed=1.5),
     "seed must be a whole number from 0 to 2**64 - 1, got 1.5."),
    ("explore_guidance.explorer", lambda sd, x: XG.explorer(sd, num_steps=5000),
     "num_steps must be a whole number from 1 to 1000, got 5000."),

    ("explore_embeddings.render", lambda sd, x: XE.render(None, "a red circle", "red", "blue", 0.5),
     NOT_SD + "NoneType."),
    ("explore_embeddings.render", lambda sd, x: XE.render(sd, "a red circle", "red", "blue", "half"),
     "weight must be a number, got 'half'."),
    ("explore_embeddings.render", lambda sd, x: XE.render(sd, "a red circle", "green", "blue", 0.5),
     "word 'green' is not in the prompt 'a red circle'; nothing to mix."),
    ("explore_embeddings.render", lambda sd, x: XE.render(sd, "a red circle", "red", "bluegreenish", 0.5),
     "word 'bluegreenish' is 3 CLIP tokens"),
    ("explore_embeddings.render", lambda sd, x: XE.render(sd, "a red circle", "red", "blue", 0.5, cache=[]),
     "cache must be None or a dict, got list."),
    ("explore_embeddings.render", lambda sd, x: XE.render(sd, 3, "red", "blue", 0.5),
     "prompt must be a string, got 3."),
    ("explore_embeddings.render",
     lambda sd, x: XE.render(sd, "a red circle", "red", "blue", 0.5, num_steps=0),
     "num_steps must be a whole number"),
    ("explore_embeddings.explorer", lambda sd, x: XE.explorer(sd, "a circle", "red", "blue"),
     "word 'red' is not in the prompt 'a circle'; nothing to mix."),
    ("explore_embeddings.explorer", lambda sd, x: XE.explorer(sd, words="red"),
     "words must be None or a non-empty list of strings, got 'red'."),
    ("explore_embeddings.explorer", lambda sd, x: XE.explorer(sd, words=["red", "bluegreenish"]),
     "word 'bluegreenish' is 3 CLIP tokens"),
    ("explore_embeddings.explorer", lambda sd, x: XE.explorer(sd, seed="0"),
     "seed must be a whole number from 0 to 2**64 - 1, got '0'."),
    ("explore_embeddings.explorer", lambda sd, x: XE.explorer(sd, num_steps=0),
     "num_steps must be a whole number from 1 to 1000, got 0."),

    ("explore_flow.render", lambda sd, x: XF.render(sd, sd, "a"),
     "eps must be a VP (eps) model and flow a flow-matching model, e.g. load_sd('builtin') and load_sd('builtin-flow'), "
     "got 'builtin' (vp) and 'builtin' (vp)."),
    ("explore_flow.render", lambda sd, x: XF.render(None, x.flow, "a"), NOT_SD + "NoneType."),
    ("explore_flow.render", lambda sd, x: XF.render(sd, x.flow, 3), "prompt must be a string, got 3."),
    ("explore_flow.render", lambda sd, x: XF.render(sd, x.flow, "a", num_steps=0),
     "num_steps must be a whole number from 1 to 100, got 0."),
    ("explore_flow.render", lambda sd, x: XF.render(sd, x.flow, "a", seed=-1),
     "seed must be a whole number from 0 to 2**64 - 1, got -1."),
    ("explore_flow.explorer", lambda sd, x: XF.explorer(x.flow, sd),
     "eps must be a VP (eps) model and flow a flow-matching model"),
    ("explore_flow.explorer", lambda sd, x: XF.explorer(sd, x.flow, prompt=["a"]),
     "prompt must be a string (the text box's start), got ['a']."),
    ("explore_flow.explorer", lambda sd, x: XF.explorer(sd, x.flow, seed=1.5),
     "seed must be a whole number from 0 to 2**64 - 1, got 1.5."),

    ("explore_sd3.render", lambda sd, x: X3.render(sd, "a"),
     "sd must be an SD3 model (a transformer denoiser), e.g. sdlib.load_sd('builtin-sd3'), got 'builtin' with a UNet."),
    ("explore_sd3.render", lambda sd, x: X3.render(None, "a"), NOT_SD + "NoneType."),
    ("explore_sd3.render", lambda sd, x: X3.render(x.sd3, 3), "prompt must be a string, got 3."),
    ("explore_sd3.render", lambda sd, x: X3.render(x.sd3, "a", num_steps=0),
     "num_steps must be a whole number from 1 to 1000, got 0."),
    ("explore_sd3.render", lambda sd, x: X3.render(x.sd3, "a", seed=-1),
     "seed must be a whole number from 0 to 2**64 - 1, got -1."),
    ("explore_sd3.explorer", lambda sd, x: X3.explorer(sd), "sd must be an SD3 model (a transformer denoiser)"),
    ("explore_sd3.explorer", lambda sd, x: X3.explorer(x.sd3, prompt=["a"]), "prompt must be a string, got ['a']."),

    ("plot_schedule", lambda sd, x: XN.plot_schedule("ddim"), f"scheduler {SCHEDULER}, got str."),
    ("plot_schedule", lambda sd, x: XN.plot_schedule(sd.scheduler, num_steps=0),
     "num_steps must be a whole number from 1 to 1000, got 0."),
    ("plot_schedule", lambda sd, x: XN.plot_schedule(sd.scheduler, num_steps=2.5),
     "num_steps must be a whole number from 1 to 1000, got 2.5."),
    ("plot_schedule", lambda sd, x: XN.plot_schedule(sd.scheduler, title=3),
     "title must be a string or None, got int."),
    ("plot_sampler_sigmas", lambda sd, x: XN.plot_sampler_sigmas({}, 10),
     "schedulers must be a non-empty dict {name: scheduler}, got an empty dict."),
    ("plot_sampler_sigmas", lambda sd, x: XN.plot_sampler_sigmas([sd.scheduler], 10),
     "schedulers must be a non-empty dict {name: scheduler}, got list."),
    ("plot_sampler_sigmas", lambda sd, x: XN.plot_sampler_sigmas({"a": "euler"}, 10),
     f"schedulers['a'] {SCHEDULER}, got str."),
    ("plot_sampler_sigmas", lambda sd, x: XN.plot_sampler_sigmas({"a": sd.scheduler}, 0),
     "num_steps must be a whole number from 1 to 1000, got 0."),
    ("strength_view", lambda sd, x: XN.strength_view("sd", x.img, "", 0.5, 0, num_steps=2), NOT_SD + "str."),
    ("strength_view", lambda sd, x: XN.strength_view(sd, 42, "", 0.5, 0, num_steps=2),
     f"image must be {IMAGE_KINDS}; got int."),
    ("strength_view", lambda sd, x: XN.strength_view(sd, x.img, None, 0.5, 0, num_steps=2),
     "prompt must be a string, got None."),
    ("strength_view", lambda sd, x: XN.strength_view(sd, x.img, "", 1.5, 0, num_steps=2),
     "strength must be a number above 0 up to 1, got 1.5."),
    ("strength_view", lambda sd, x: XN.strength_view(sd, x.img, "", "0.5", 0, num_steps=2),
     "strength must be a number above 0 up to 1, got '0.5'."),
    ("strength_view", lambda sd, x: XN.strength_view(sd, x.img, "", 0.5, 9, num_steps=2),
     "step must be a whole number from 0 to 1, got 9."),
    ("strength_view", lambda sd, x: XN.strength_view(sd, x.img, "", 0.5, 0.5, num_steps=2),
     "step must be a whole number from 0 to 1, got 0.5."),
    ("strength_view", lambda sd, x: XN.strength_view(sd, x.img, "", 0.5, 0, num_steps=0),
     "num_steps must be a whole number from 1 to 1000, got 0."),
    ("strength_view", lambda sd, x: XN.strength_view(sd, x.img, "", 0.5, 0, num_steps=2, scheduler="euler"),
     f"scheduler {SCHEDULER}, got str."),
    ("strength_view", lambda sd, x: XN.strength_view(sd, x.img, "", 0.5, 0, num_steps=2, seed=-1),
     "seed must be a whole number from 0 to 2**64 - 1, got -1."),
    ("strength_view", lambda sd, x: XN.strength_view(sd, x.img, "", 0.5, 0, num_steps=2, guidance_scale=None),
     "guidance_scale must be a number, got None."),
    ("strength_view", lambda sd, x: XN.strength_view(sd, x.img, "", 0.5, 0, num_steps=2, run="yes"),
     "run must be True or False, got 'yes'."),
    ("strength_view", lambda sd, x: XN.strength_view(sd, x.img, "", 0.5, 0, num_steps=2, cache=[]),
     "cache must be None or a dict, got list."),
    ("strength_explorer", lambda sd, x: XN.strength_explorer(sd, x.img, 3, num_steps=2),
     "prompt must be a string, got 3."),
    ("strength_explorer", lambda sd, x: XN.strength_explorer(sd, None, "", num_steps=2),
     f"image must be {IMAGE_KINDS}; got NoneType."),
    ("strength_explorer", lambda sd, x: XN.strength_explorer(sd, x.img, "", num_steps=-2),
     "num_steps must be a whole number from 1 to 1000, got -2."),

    ("judge", lambda sd, x: C.judge(42), f"image must be {IMAGE_KINDS}; got int."),
    ("object_mask", lambda sd, x: C.object_mask(42), f"image must be {IMAGE_KINDS}; got int."),
    ("object_mask", lambda sd, x: C.object_mask(x.img, "mauve"), BACKGROUNDS + "'mauve'."),
    ("judge", lambda sd, x: C.judge(x.img, "mauve"), BACKGROUNDS + "'mauve'."),
    ("judge", lambda sd, x: C.judge(x.img, (1, 2)), BACKGROUNDS + "(1, 2)."),
    ("judge", lambda sd, x: C.judge(x.img, (0, 0, 300)), BACKGROUNDS + "(0, 0, 300)."),
    ("judge", lambda sd, x: C.judge(x.img, max_objects=0), "max_objects must be a whole number >= 1, got 0."),
    ("adherence", lambda sd, x: C.adherence([x.img], []),
     "images and scenes must have the same length (one scene per image), got 1 images and 0 scenes."),
    ("adherence", lambda sd, x: C.adherence([x.img], ["a red circle"]),
     "scenes must be a list of sdlib.builtin.scenes.Scene objects, got a str at scenes[0]."),
    ("adherence", lambda sd, x: C.adherence(x.img, [x.scene]),
     "images must be a list of images or a uint8 batch (B, H, W, 3), got Image."),
    ("adherence", lambda sd, x: C.adherence([x.img], [x.scene], use_scene_background=1),
     "use_scene_background must be True or False, got 1."),
    ("judge", lambda sd, x: C.judge(x.img, colours={"red": "215,30,30"}), "colours must be a dict of colour names to (r, g, b)"),
    ("share_of", lambda sd, x: C.share_of([x.img]), "share_of needs a colour, a shape or both to look for, got neither."),
    ("share_of", lambda sd, x: C.share_of([x.img], colour="pink"), "colour must be one of 'red', "),
    ("share_of", lambda sd, x: C.share_of([x.img], shape="heart"), "shape must be one of 'circle', "),
    ("share_of", lambda sd, x: C.share_of([x.img], colour="red", colours={}), "colours must be a dict of colour names"),
    ("share_of", lambda sd, x: C.share_of([x.img], colour="red", colours={"red": (300, 0, 0)}), "colours must be a dict"),
    ("share_of", lambda sd, x: C.share_of(x.img, colour="red"), "images must be a non-empty list of images, got Image."),
    ("share_of", lambda sd, x: C.share_of([], colour="red"), "images must be a non-empty list of images, got list."),
    ("objects_in", lambda sd, x: C.objects_in(x.img, np.ones((3, 3), bool)),
     "region must be a bool mask of shape "),
    ("position_ok", lambda sd, x: C.position_ok(x.img, [x.scene]),
     "images must be a list of images or a uint8 batch (B, H, W, 3), got Image."),
    ("size_ok", lambda sd, x: C.size_ok([x.img], [x.scene]),
     "image_pairs must be a list of (small, large) pairs, got list."),
    ("two_objects_ok", lambda sd, x: C.two_objects_ok([x.img], []),
     "images and scenes must have the same length (one scene per image), got 1 images and 0 scenes."),
    ("in_named_part", lambda sd, x: C.in_named_part((0.1, 0.1), "leftish"), "position must be one of "),
    ("in_named_part", lambda sd, x: C.in_named_part((0.1, 0.1), "middle", parts=2),
     'position "middle" has no half; use parts=3.'),
    ("lab", lambda sd, x: C.lab("red"), "rgb must be RGB in 0..255 with 3 values last, such as (215, 30, 30) or an array (..., 3); got 'red'."),
    ("lab", lambda sd, x: C.lab((1, 2)), "rgb must be RGB in 0..255 with 3 values last, such as (215, 30, 30) or an array (..., 3); got shape (2,)."),
    ("lab", lambda sd, x: C.lab((0, 0, 300)), "rgb must be RGB in 0..255 with 3 values last, such as (215, 30, 30) or an array (..., 3); got (0, 0, 300)."),
    ("colour_difference", lambda sd, x: C.colour_difference((1, 2, 3), None),
     "reference must be RGB in 0..255 with 3 values last, such as (215, 30, 30) or an array (..., 3); got None."),
    ("colour_difference", lambda sd, x: C.colour_difference((1, 2, float("nan")), (1, 2, 3)),
     "rgb must be RGB in 0..255 with 3 values last, such as (215, 30, 30) or an array (..., 3); got (1, 2, nan)."),
    ("background_name", lambda sd, x: C.background_name(42), f"image must be {IMAGE_KINDS}; got int."),
    ("error_rates", lambda sd, x: C.error_rates(0), "n must be a whole number >= 1, got 0."),
    ("error_rates", lambda sd, x: C.error_rates(4, seed=-1), "seed must be a whole number >= 0, got -1."),
    ("error_rates", lambda sd, x: C.error_rates(4, size=16), "size must be a whole number >= 32, got 16."),
    ("error_rates", lambda sd, x: C.error_rates(4, verbose=1), "verbose must be True or False, got 1."),
    ("error_rates", lambda sd, x: C.error_rates(4, sd="sd"), NOT_SD + "str."),
    ("validate", lambda sd, x: C.validate(0), "n must be a whole number >= 1, got 0."),
    ("validate", lambda sd, x: C.validate(10, seed=-1), "seed must be a whole number >= 0, got -1."),
    ("validate", lambda sd, x: C.validate(10, size=16), "size must be a whole number >= 32, got 16."),
    ("validate", lambda sd, x: C.validate(10, verbose="no"), "verbose must be True or False, got 'no'."),
    ("estimate_background", lambda sd, x: C.estimate_background(x.img, k=4),
     "k must be a whole number from 1 to 3, got 4."),
    ("estimate_background", lambda sd, x: C.estimate_background(x.img, min_share=0.9),
     "min_share must be a number from 0 to 0.333333, got 0.9."),
    ("estimate_background", lambda sd, x: C.estimate_background(x.img, iters=0),
     "iters must be a whole number >= 1, got 0."),
    ("estimate_background", lambda sd, x: C.estimate_background(None),
     f"img must be {IMAGE_KINDS}; got NoneType."),
    ("background_segments", lambda sd, x: C.background_segments("mauve", None), BACKGROUNDS + "'mauve'."),
    ("background_segments", lambda sd, x: C.background_segments(("a", "b", "c"), None),
     BACKGROUNDS + "('a', 'b', 'c')."),
]


@pytest.mark.parametrize("function, call, message", CASES,
                         ids=[f"{f}-{k}" for k, (f, _, _) in enumerate(CASES)])
def test_bad_input_is_one_clear_error(sd, x, function, call, message):
    with pytest.raises(sdlib.SDLibError) as e:
        call(sd, x)
    assert re.match(re.escape(message.replace("{file}", str(x.file))), str(e.value)), str(e.value)
    assert "\n" not in str(e.value)
    err = e.value  # raised by sdlib itself, with no library traceback chained to it
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)
    tb = e.tb
    while tb.tb_next is not None:
        tb = tb.tb_next
    assert "/sdlib/" in tb.tb_frame.f_code.co_filename.replace("\\", "/")
    plt.close("all")


def test_every_public_display_function_is_covered():
    """A new public function in these modules needs its bad-input cases here too."""
    modules = [("", m) for m in (IM, P, A, XL, XN, C)]
    modules += [("explore_guidance.", XG), ("explore_embeddings.", XE), ("explore_flow.", XF), ("explore_sd3.", X3)]
    public = {prefix + name for prefix, m in modules for name, f in vars(m).items()
              if callable(f) and not name.startswith("_") and getattr(f, "__module__", None) == m.__name__
              and not isinstance(f, type)}
    assert public <= {f for f, _, _ in CASES}, sorted(public - {f for f, _, _ in CASES})
