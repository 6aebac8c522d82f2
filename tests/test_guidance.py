"""Guidance losses are the functions they claim to be, the measures measure, and sweeps are
exactly repeated `generate` calls (so a sweep differs only in the swept setting)."""
import pytest
import torch

import sdlib
from sdlib import guidance as G
from sdlib.builtin import evaluate, scenes


def image_of(rgb, size=8):
    return torch.tensor(rgb, dtype=torch.float32)[None, :, None, None].expand(1, 3, size, size)


def test_blue_loss_is_the_deep_dive_loss_and_pulls_only_blue():
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)).requires_grad_()
    loss = G.blue_loss(x)
    assert torch.allclose(loss, torch.abs(x[:, 2] - 0.9).mean())  # fast.ai's blue_loss
    grad = torch.autograd.grad(loss, x)[0]
    assert grad[:, :2].abs().max() == 0 and grad[:, 2].abs().min() > 0
    assert G.blue_loss(image_of((0.3, 0.2, 0.9))) == 0


def test_colour_loss_zero_at_target_and_names_match_rgb():
    assert G.colour_loss(image_of((1.0, 0.0, 0.0)), (1, 0, 0)) == 0
    assert G.colour_loss(image_of((1.0, 0.0, 0.0)), (0, 0, 0)) == pytest.approx(1 / 3)
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(G.colour_loss(x, "red"), G.colour_loss(x, (1.0, 0.0, 0.0)))
    assert torch.allclose(G.colour_loss(x, "purple"), G.colour_loss(x, (128, 0, 128)))  # 0..255
    assert torch.allclose(G.colour_loss(x, "#800080"), G.colour_loss(x, "purple"))
    with pytest.raises(sdlib.SDLibError, match="unknown colour"):
        G.colour_loss(x, "mauve")
    with pytest.raises(sdlib.SDLibError, match="three numbers"):
        G.colour_loss(x, (1, 2))


def test_dark_left_loss_sees_only_the_left_half_and_brightness_its_target():
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    y = x.clone()
    y[..., 4:] = 1 - y[..., 4:]  # change only the right half
    assert G.dark_left_loss(x) == G.dark_left_loss(y) == x[..., :4].mean()
    assert G.brightness_loss(image_of((0.9, 0.9, 0.9)), 0.9) < 1e-6
    assert G.brightness_loss(image_of((0.0, 0.0, 0.0)), 0.9) == pytest.approx(0.9)


def test_blue_fraction_counts_blue_pixels_not_white():
    x = torch.ones(2, 3, 4, 4)  # image 0: white; image 1: left half blue
    x[1, :2, :, :2] = 0.2
    assert G.blue_fraction(x).tolist() == [0.0, 0.5]
    assert G.blue_fraction(sdlib.to_pil(x)).tolist() == [0.0, 0.5]  # PIL images too


def test_bad_image_shape_is_one_clear_error():
    with pytest.raises(sdlib.SDLibError, match=r"\(B, 3, H, W\)"):
        G.blue_loss(torch.rand(3, 8, 8))


def test_sweep_is_generate_with_one_setting_changed(sd):
    kw = dict(num_steps=3, negative_prompt="a blue square")
    images = G.cfg_sweep(sd, "a red circle", (1, 7.5), seed=2, **kw)
    for scale, image in zip((1, 7.5), images):
        ref = sdlib.generate(sd, "a red circle", guidance_scale=scale, seed=2, **kw)
        assert sdlib.max_pixel_diff(image, ref) == 0
    assert sdlib.max_pixel_diff(*images) > 0
    with pytest.raises(sdlib.SDLibError, match="swept setting"):
        G.sweep(sd, "a red circle", "num_steps", [2, 3], num_steps=2)
    by_seed = G.sweep(sd, "a red circle", "seed", [5, 6], num_steps=2)
    assert sdlib.max_pixel_diff(by_seed[1], sdlib.generate(sd, "a red circle", seed=6, num_steps=2)) == 0


def test_blue_rises_with_the_loss_scale_then_saturates(sd):
    """More loss scale, more blue, until the picture is as blue as the loss gets it (notebook 05)."""
    images = torch.cat(G.sweep(sd, "a large green square", "loss_scale", [0, 100, 3000],
                               loss_fn=G.blue_loss, loss_every=2, num_steps=6, output="tensor"))
    mean_blue = images[:, 2].mean((1, 2)).tolist()
    fractions = G.blue_fraction(images).tolist()
    assert mean_blue[1] > mean_blue[0] + 0.2 and mean_blue[2] >= mean_blue[1] - 0.02
    # the blue fraction is a weaker measure: on v2 the plain 6-step picture already has ~0.8 (its
    # background decodes bluish at 6 steps), so only ask that it does not fall (notebook 05 says so)
    assert fractions[2] >= fractions[0]


def test_adherence_by_scale_judges_the_generated_images(sd):
    from sdlib.builtin import checker

    result = evaluate.adherence_by_scale(sd, scales=(1, 7.5), n_prompts=3, num_steps=2, batch_size=2)
    assert list(result) == [1, 7.5]
    items = scenes.eval_prompts(3, 0)
    images = sdlib.generate(sd, [p for p, _ in items[:2]], seed=0, num_steps=2, guidance_scale=7.5)
    images += sdlib.generate(sd, [items[2][0]], seed=2, num_steps=2, guidance_scale=7.5)
    assert result[7.5] == checker.adherence(images, [s for _, s in items])
    assert result[1]["n"] == 3


def test_one_loss_scale_means_the_same_under_ddim_and_euler(sd):
    """The loss step is derived for VP and VE latents alike, so one scale moves the picture about
    as far under DDIM as under Euler. Measured (25 steps, 8 prompts, scale 10-100): ratio 0.99-1.01;
    with the old x_t - sigma^2 grad step on VP latents it was 167 at scale 1."""
    prompts = [p for p, _ in scenes.eval_prompts(4, 0)]
    kw = dict(num_steps=10, seed=0, output="tensor")
    rise = {}
    for name in ("ddim", "euler"):
        scheduler = sdlib.make_scheduler(name, sd.scheduler)
        plain = G.blue_fraction(sdlib.generate(sd, prompts, scheduler=scheduler, **kw)).mean()
        blue = sdlib.generate(sd, prompts, scheduler=scheduler, loss_fn=G.blue_loss, loss_scale=30, **kw)
        rise[name] = float(G.blue_fraction(blue).mean() - plain)
    assert rise["euler"] > 0.05, rise  # measured: ddim +0.265, euler +0.230
    assert 0.6 < rise["ddim"] / rise["euler"] < 1.6, rise


def test_default_blue_scale_makes_pictures_bluer(sd):
    kw = dict(num_steps=10, seed=0, loss_every=1, output="tensor")
    plain = sdlib.generate(sd, "a red circle", **kw)
    blue = sdlib.generate(sd, "a red circle", loss_fn=G.blue_loss, loss_scale=G.DEFAULT_BLUE_SCALE, **kw)
    assert blue[:, 2].mean() > plain[:, 2].mean() + 0.1  # the channel the loss pulls on
    assert G.blue_fraction(blue) > G.blue_fraction(plain)


@pytest.mark.parametrize("call,message", [
    (lambda sd: G.sweep(sd, "a red circle", "cfg", [1, 2]), r"name must be a setting of sdlib.generate \(negative_prompt, num_steps"),
    (lambda sd: G.sweep(sd, "a red circle", "seed", []), r"values must be a non-empty list of seed values"),
    (lambda sd: G.blue_loss(torch.zeros(3, 8, 8)), r"images: a guidance loss takes a tensor \(B, 3, H, W\).*got \(3, 8, 8\)"),
    (lambda sd: G.blue_loss("image.png"), r"images: a guidance loss takes a tensor.*got str"),
    (lambda sd: G.brightness_loss(torch.zeros(1, 3, 8, 8), target=2), r"target must be a number from 0 to 1, got 2"),
    (lambda sd: G.blue_fraction(torch.zeros(1, 3, 8, 8), margin="a"), r"margin must be a number from 0 to 1, got 'a'"),
    (lambda sd: G.colour_loss(torch.zeros(1, 3, 8, 8), "mauve"), r"unknown colour 'mauve'"),
])
def test_guidance_bad_inputs(sd, call, message):
    with pytest.raises(sdlib.SDLibError, match=message):
        call(sd)
