"""The VAE's photos: offline, seeded, and the held-out one never among the training crops."""
import numpy as np

from sdlib.builtin import photos


def test_training_photos_ship_offline_and_exclude_the_held_out_one():
    train = photos.training_photos()
    assert len(train) >= 15 and all(p.ndim == 3 and p.shape[2] == 3 and p.dtype == np.uint8 for p in train)
    held = photos._skimage(photos.HELD_OUT_PHOTO)
    assert not any(p.shape == held.shape and (p == held).all() for p in train)
    assert photos.held_out_photo(128).size == (128, 128)


def test_crops_and_textures_are_seeded():
    a, b = photos.photo_crops(6, seed=3, size=32), photos.photo_crops(6, seed=3, size=32)
    assert a.shape == (6, 32, 32, 3) and (a == b).all()
    assert not (a == photos.photo_crops(6, seed=4, size=32)).all()
    t = photos.noise_textures(4, seed=0, size=32)
    assert t.shape == (4, 32, 32, 3) and t.std() > 10  # not flat
