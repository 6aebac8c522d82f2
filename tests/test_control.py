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
    assert not any(C.is_held_out(o.center, o.extent) for o in train)
    assert all(C.is_held_out(o.center, o.extent) for o in held)
    assert {o.colour + o.shape for o in train} <= {c + s for c, s in scenes.TRAIN_PAIRS}
    assert C.control_caption(C.plain_scene("orange", "circle", (0.5, 0.5), 0.3)) == "an orange circle"


def test_a_new_controlnet_leaves_the_unet_as_it_was():
    """ControlNet's zero convolutions: before training, the controlled UNet is the UNet exactly."""
    from diffusers import ControlNetModel

    sd = sdlib.load_sd("builtin")
    torch.manual_seed(0)
    controlnet = ControlNetModel.from_unet(sd.unet)
    torch.manual_seed(0)  # the map's small convolutions start random
    quiet = sdlib.control.untrained_controlnet(sd)  # the same, on sd's device and dtype
    assert all(torch.equal(a, b) for a, b in zip(controlnet.state_dict().values(), quiet.state_dict().values()))
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


# ---------------------------------------------------------------- the sampler's ControlNet stage
def control_pipe_pixels(sd, seed, **kw):
    """diffusers' StableDiffusionControlNetPipeline made from the bundle's very parts."""
    from diffusers import StableDiffusionControlNetPipeline

    pipe = StableDiffusionControlNetPipeline(
        vae=sd.vae, text_encoder=sd.text_encoder, tokenizer=sd.tokenizer, unet=sd.unet, controlnet=sd.controlnet,
        scheduler=sd.scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(generator=torch.Generator("cpu").manual_seed(seed), output_type="np", **kw)
    return torch.from_numpy(out.images).permute(0, 3, 1, 2)  # (B, 3, H, W)


@pytest.fixture(scope="module")
def controlled_sd():
    """The built-in model with a ControlNet whose zero convolutions are random (so it steers)."""
    import dataclasses

    from sdlib.testing.twins import twin_controlnet

    sd = sdlib.load_sd("builtin", device="cpu")
    return dataclasses.replace(sd, controlnet=twin_controlnet(sd.unet, seed=1).eval())


@pytest.mark.parametrize("scale", [0.0, 0.6, 1.5])
def test_controlnet_loop_matches_the_pipeline(controlled_sd, scale):
    sd = controlled_sd
    scene = C.plain_scene("red", "circle", (0.3, 0.6), 0.3)
    control = sdlib.to_pil(C.control_images([scene], sd.image_size))[0]  # a PIL image, as a learner passes it
    ref = control_pipe_pixels(sd, 2, prompt="a red circle", image=control, num_inference_steps=5,
                              guidance_scale=7.5, controlnet_conditioning_scale=scale)
    mine = sdlib.generate(sd, "a red circle", num_steps=5, seed=2, control_image=control,
                          conditioning_scale=scale, output="tensor")
    assert (mine - ref).abs().max() <= 1e-5
    plain = sdlib.generate(sd, "a red circle", num_steps=5, seed=2, output="tensor")
    assert (mine - plain).abs().max() > 0.01 if scale else (mine - plain).abs().max() <= 1e-6


def test_controlnet_batch_and_negative_match_the_pipeline(controlled_sd):
    sd = controlled_sd
    maps = C.control_images([C.plain_scene("red", "square", (0.5, 0.5), 0.4)], sd.image_size)  # (1, 3, H, W)
    prompts = ["a red square", "a blue circle"]
    ref = control_pipe_pixels(sd, 0, prompt=prompts, negative_prompt=["a green triangle"] * 2, image=maps,
                              num_inference_steps=4, guidance_scale=5.0)
    mine = sdlib.generate(sd, prompts, "a green triangle", num_steps=4, guidance_scale=5.0, seed=0,
                          control_image=maps, output="tensor")
    assert (mine - ref).abs().max() <= 1e-5


def test_controlnet_on_sd_v1_twin_matches_the_pipeline(tmp_path_factory):
    """SD v1.4's shapes (PNDM, 768-wide CLIP), narrowed; its ControlNet found beside its parts."""
    from sdlib.testing import twins

    folder = twins.build_twin("sd-v1-4", tmp_path_factory.mktemp("twins") / "v1", sample_size=8, text_layers=2)
    sd = sdlib.load_controlnet(sdlib.load_sd(str(folder), device="cpu"))
    assert sdlib.control.default_controlnet(sd)[1] == "edges"
    edges = C.control_images([C.plain_scene("red", "circle", (0.5, 0.5), 0.4)], sd.image_size, "edges")
    ref = control_pipe_pixels(sd, 1, prompt="a photo of a cat", image=edges, num_inference_steps=4,
                              controlnet_conditioning_scale=0.8)
    mine = sdlib.generate(sd, "a photo of a cat", num_steps=4, seed=1, control_image=edges,
                          conditioning_scale=0.8, output="tensor")
    assert (mine - ref).abs().max() <= 1e-5


def test_control_bad_inputs_are_one_clear_error(controlled_sd):
    sd, size = controlled_sd, controlled_sd.image_size
    good = C.control_images([C.plain_scene("red", "circle", (0.5, 0.5), 0.3)], size)
    cases = [
        (dict(control_image=good[:, :1]), "control_image must have 3 channels"),
        (dict(control_image=good[..., :64]), f"control_image must be {size} x {size} pixels"),
        (dict(control_image=good * 255), r"control_image must hold values in \[0, 1\]"),
        (dict(control_image=good, conditioning_scale=-0.5), "conditioning_scale must be"),
        (dict(conditioning_scale=0.5), "conditioning_scale is 0.5 but control_image is None"),
    ]
    for kw, message in cases:
        with pytest.raises(sdlib.SDLibError, match=message):
            sdlib.generate(sd, "a red circle", num_steps=2, **kw)
    import dataclasses

    with pytest.raises(sdlib.SDLibError, match="needs a ControlNet beside the model"):
        sdlib.generate(dataclasses.replace(sd, controlnet=None), "a red circle", num_steps=2, control_image=good)
    with pytest.raises(sdlib.SDLibError, match="cannot load a ControlNet from"):
        sdlib.load_controlnet(sd, "/nonexistent/controlnet")


def test_concat_training_widens_the_unet_and_exports_it(tmp_path):
    """--method concat: the UNet with a fifth input channel, fine-tuned; exported in half precision,
    it loads as a UNet reading 5 channels, and generate(depth_map=) runs it."""
    import dataclasses

    from diffusers import UNet2DConditionModel

    common = ["--method", "concat", "--data", "8", "--batch", "2", "--every", "2", "--threads", "1"]
    train_control.main(["--out", str(tmp_path / "run"), "--steps", "2", *common])
    train_control.main(["--out", str(tmp_path / "run"), "--export", str(tmp_path / "unet")])
    unet = UNet2DConditionModel.from_pretrained(tmp_path / "unet", torch_dtype=torch.float32)
    assert unet.config.in_channels == 5 and unet.conv_in.weight[:, 4].abs().max() > 0  # it learnt from the map
    sd = dataclasses.replace(sdlib.load_sd("builtin", device="cpu"), unet=unet)
    depth = C.control_map(C.plain_scene("red", "circle", (0.3, 0.6), 0.3), 128, "depth")
    assert sdlib.generate(sd, "a red circle", num_steps=2, depth_map=depth, output="tensor").shape == (1, 3, 128, 128)
