"""VAE and image helpers: shapes, scaling, conversions and clear errors."""
import numpy as np
import pytest
import torch
from PIL import Image

import sdlib


def photo(size=64):
    from skimage import data
    return sdlib.load_image(data.astronaut(), size=size)


def test_roundtrip_pil_tensor():
    img = photo()
    x = sdlib.to_tensor(img)
    assert x.shape == (1, 3, 64, 64) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert np.array_equal(np.asarray(sdlib.to_pil(x)[0]), np.asarray(img))


def test_encode_shape_scaling_and_reference(sd):
    img = photo()
    z = sdlib.encode(sd, img)
    assert z.shape == (1, 4, 8, 8)  # 64x64x3 -> 8x8x4: 48x fewer numbers
    ref = sd.vae.encode(sdlib.to_tensor(img) * 2 - 1).latent_dist.mean * sd.vae.config.scaling_factor
    assert torch.allclose(z, ref)
    out = sdlib.decode(sd, z)
    assert out.shape == (1, 3, 64, 64) and 0 <= out.min() and out.max() <= 1
    ref_img = (sd.vae.decode(z / sd.vae.config.scaling_factor).sample / 2 + 0.5).clamp(0, 1)
    assert torch.allclose(out, ref_img)


def test_non_square_multiple_of_eight(sd):
    z = sdlib.encode(sd, photo().resize((96, 40)))
    assert z.shape == (1, 4, 5, 12)


def test_size_not_multiple_of_eight_is_one_clear_error(sd):
    with pytest.raises(sdlib.SDLibError, match=r"60x50 .* multiples of 8; resize it, e.g. sdlib.load_image\(img, size=48\)"):
        sdlib.encode(sd, photo().resize((60, 50)))


def test_load_image_resizes_with_centre_crop():
    img = sdlib.load_image(np.zeros((100, 200, 3), np.uint8), size=64)
    assert img.size == (64, 64)
    assert sdlib.load_image(np.zeros((100, 200, 3), np.uint8), size=(48, 32)).size == (48, 32)


def test_rgba_and_grey_are_converted_with_a_note():
    rgba = Image.new("RGBA", (16, 16), (255, 0, 0, 0))  # fully transparent red
    with pytest.warns(UserWarning, match="alpha composited onto white"):
        rgb = sdlib.load_image(rgba)
    assert rgb.mode == "RGB" and rgb.getpixel((0, 0)) == (255, 255, 255)
    with pytest.warns(UserWarning, match="grey"):
        assert sdlib.load_image(Image.new("L", (8, 8), 7)).getpixel((0, 0)) == (7, 7, 7)


def test_to_array_gives_the_same_pixels_for_every_input_kind(tmp_path):
    img = photo(16)
    ref = np.asarray(img)  # (16, 16, 3) uint8
    x = sdlib.to_tensor(img)  # (1, 3, 16, 16)
    img.save(tmp_path / "p.png")
    for kind in (img, ref, ref / 255.0, x, x[0], tmp_path / "p.png"):
        out = sdlib.images.to_array(kind)
        assert out.dtype == np.uint8 and np.array_equal(out, ref), type(kind)
        assert np.array_equal(np.asarray(sdlib.load_image(kind)), ref)
    grad = x[0, 0].clone().requires_grad_()  # a 2-D map keeps its values, as float32
    out = sdlib.images.to_array(grad * 3 - 1)
    assert out.dtype == np.float32 and np.allclose(out, x[0, 0].numpy() * 3 - 1)
    assert np.array_equal(sdlib.images.to_array(ref[..., 0]), ref[..., 0].astype(np.float32))


def test_bad_inputs():
    with pytest.raises(sdlib.SDLibError, match="images must be a path, a PIL image, an array"):
        sdlib.to_tensor(42)
    with pytest.raises(sdlib.SDLibError, match="cannot open image"):
        sdlib.load_image("/nonexistent/picture.png")
    with pytest.raises(sdlib.SDLibError, match=r"\(B, 3, H, W\)"):
        sdlib.to_tensor(torch.zeros(1, 4, 8, 8))


def test_decode_rejects_wrong_latents(sd):
    with pytest.raises(sdlib.SDLibError, match=r"\(B, 4, h, w\)"):
        sdlib.decode(sd, torch.zeros(1, 3, 8, 8))
