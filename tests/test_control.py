"""ControlNet pieces: control maps drawn exactly from scenes, the controlled UNet (zero convolutions:
at the start it is the UNet exactly), and the training stage (resumable, on the library's objective)."""
import numpy as np
import pytest
import torch

import sdlib
from sdlib.builtin import control_maps as C
from sdlib.builtin import scenes, train_control
from sdlib.conditioning.control import Controlled


def test_maps_are_the_objects_exactly():
    scene = C.plain_scene("red", "square", (0.5, 0.5), 0.5)
    mask = C.control_map(scene, 64, "mask")
    assert mask.shape == (64, 64) and abs(mask.sum() / (32 * 32) - 1) < 0.05  # a square of side 32 px (edges antialiased)
    edges = C.control_map(scene, 64, "edges")
    assert edges[32, 32] == 0 and edges[16, 32] > 0.5  # the outline, not the inside
    small, large = (C.control_map(C.plain_scene("red", "circle", (0.5, 0.5), e), 64, "depth").max() for e in (0.2, 0.5))
    assert small == pytest.approx(C.FAR) and large == pytest.approx(C.NEAR)  # larger is nearer
    images = C.control_images([scene, scene], 64)
    assert images.shape == (2, 3, 64, 64) and torch.equal(images[0, 0], torch.from_numpy(mask))


def test_held_out_maps_are_never_drawn_in_training():
    rng = np.random.default_rng(0)
    train = [C.control_scene(rng, "train").main for _ in range(300)]
    held = [C.control_scene(rng, "heldout").main for _ in range(50)]
    assert not any(C._held_out(o.center, o.extent) for o in train)
    assert all(C._held_out(o.center, o.extent) for o in held)
    assert {o.colour + o.shape for o in train} <= {c + s for c, s in scenes.TRAIN_PAIRS}
    assert C.control_caption(C.plain_scene("orange", "circle", (0.5, 0.5), 0.3)) == "an orange circle"


def test_a_new_controlnet_leaves_the_unet_as_it_was():
    """ControlNet's zero convolutions: before training, the controlled UNet is the UNet exactly."""
    from diffusers import ControlNetModel

    sd = sdlib.load_sd("builtin")
    controlnet = ControlNetModel.from_unet(sd.unet)
    g = torch.Generator().manual_seed(0)
    x_t = torch.randn(2, 4, 16, 16, generator=g)
    emb = sdlib.encode_text(sd, ["a red circle", ""])
    cond = C.control_images([C.plain_scene("red", "circle", (0.3, 0.6), 0.3)], 128)
    with torch.no_grad():
        plain = sd.unet(x_t, 500, encoder_hidden_states=emb).sample
        steered = Controlled(sd.unet, controlnet, cond)(x_t, 500, encoder_hidden_states=emb).sample
    assert torch.equal(plain, steered)
    with pytest.raises(sdlib.SDLibError, match="control_image must be a tensor"):
        Controlled(sd.unet, controlnet, cond[0])
    with pytest.raises(sdlib.SDLibError, match="scale must be"):
        Controlled(sd.unet, controlnet, cond, scale=-1)


def test_training_stage_resumes_exactly(tmp_path):
    common = ["--data", "8", "--batch", "2", "--every", "2", "--threads", "1"]
    train_control.main(["--out", str(tmp_path / "a"), "--steps", "4", *common])
    train_control.main(["--out", str(tmp_path / "b"), "--steps", "4", "--until", "2", *common])
    train_control.main(["--out", str(tmp_path / "b"), "--steps", "4", *common])  # resumes at 2
    from safetensors.torch import load_file

    a, b = (load_file(sorted((tmp_path / r).glob("step*"))[-1] / "controlnet.safetensors") for r in "ab")
    assert all(torch.equal(a[k], b[k]) for k in a)
    train_control.main(["--out", str(tmp_path / "a"), "--export", str(tmp_path / "export")])
    from diffusers import ControlNetModel

    weights = load_file(next((tmp_path / "export").glob("*.safetensors")))
    assert {v.dtype for v in weights.values()} == {torch.float16}  # shipped in half precision
    exported = ControlNetModel.from_pretrained(tmp_path / "export", torch_dtype=torch.float32)
    assert torch.equal(exported.conv_in.weight, a["conv_in.weight"].half().float())
