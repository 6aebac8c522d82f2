"""Image-quality measures against scikit-image and numpy."""
import math

import numpy as np
import pytest
import torch
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio

import sdlib
from sdlib import metrics


def pair(seed=0, size=16):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(1, 3, size, size, generator=g)
    b = (a + 0.1 * torch.randn(1, 3, size, size, generator=g)).clamp(0, 1)
    return a, b


def test_psnr_and_mse_match_skimage():
    a, b = pair()
    an, bn = a[0].permute(1, 2, 0).double().numpy(), b[0].permute(1, 2, 0).double().numpy()
    assert metrics.psnr(a, b) == pytest.approx(peak_signal_noise_ratio(an, bn, data_range=1), abs=1e-4)
    assert metrics.mse(a, b) == pytest.approx(mean_squared_error(an, bn), rel=1e-5)
    assert isinstance(metrics.psnr(a, b), float)


def test_psnr_of_pil_images_equals_psnr_of_their_tensors():
    a, b = pair(1)
    pa, pb = sdlib.to_pil(a)[0], sdlib.to_pil(b)[0]
    assert metrics.psnr(pa, pb) == pytest.approx(metrics.psnr(sdlib.to_tensor(pa), sdlib.to_tensor(pb)))


def test_psnr_known_values_and_batches():
    a = torch.zeros(2, 3, 8, 8)
    b = a.clone()
    b[0] += 0.1  # MSE 0.01 -> 20 dB
    values = metrics.psnr(a, b)
    assert values.shape == (2,)
    assert values[0] == pytest.approx(20.0, abs=1e-4) and math.isinf(values[1])
    assert metrics.psnr(a[:1], a[:1]) == math.inf
    # one reference against a batch broadcasts
    assert torch.allclose(metrics.psnr(a[:1], b), values)


def test_error_map_is_mean_abs_difference_with_gain():
    a, b = pair(2)
    m = metrics.error_map(a, b, gain=4)
    assert m.shape == (1, 16, 16)
    ref = np.clip(np.abs(a.numpy() - b.numpy()).mean(1) * 4, 0, 1)
    assert np.allclose(m.numpy(), ref, atol=1e-6)


def test_region_psnr_equals_psnr_of_crops():
    a, b = pair(3)
    boxes = {"left": (0, 0, 8, 16), "corner": (8, 8, 16, 16)}
    out = metrics.region_psnr(a, b, boxes)
    assert out["left"] == pytest.approx(metrics.psnr(a[..., :, :8], b[..., :, :8]))
    assert out["corner"] == pytest.approx(metrics.psnr(a[..., 8:, 8:], b[..., 8:, 8:]))


def test_bad_inputs_are_one_clear_error():
    a, _ = pair()
    with pytest.raises(sdlib.SDLibError, match="cannot compare images of shapes"):
        metrics.psnr(a, torch.zeros(1, 3, 8, 8))
    with pytest.raises(sdlib.SDLibError, match="region 'x' box .* outside"):
        metrics.region_psnr(a, a, {"x": (0, 0, 17, 4)})


def test_error_image_is_the_map_in_grey_rgb():
    a, b = pair(4)
    img = metrics.error_image(a, b, gain=2)
    assert img.shape == (1, 3, 16, 16)
    assert torch.equal(img[:, 0], metrics.error_map(a, b, gain=2)) and torch.equal(img[:, 0], img[:, 2])


def test_psnr_in_and_edge_step_measure_only_the_region():
    a = torch.zeros(2, 3, 8, 8)
    b = a.clone()
    b[:, :, :, 4:] = 0.5  # differs only on the right half
    left = torch.zeros(8, 8, dtype=torch.bool)
    left[:, :4] = True
    assert sdlib.metrics.psnr_in(b, a, left) == [float("inf")] * 2
    assert abs(sdlib.metrics.psnr_in(b, a, ~left)[0] - 10 * math.log10(1 / 0.25)) < 1e-4
    assert sdlib.metrics.edge_step(b, left) == [0.5, 0.5]  # the step across the edge
    assert sdlib.metrics.edge_step(a, left) == [0.0, 0.0]
    with pytest.raises(sdlib.SDLibError, match="region must be a non-empty bool mask of shape"):
        sdlib.metrics.psnr_in(a, b, left[:4])
