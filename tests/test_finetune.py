"""Fine-tuning (notebooks/07): the loss is diffusers' training loss (the noise, or v on a
v-prediction model); one step of textual inversion or of LoRA lowers the loss on the very batch
it learned from; textual inversion moves one row of the token table and nothing else; a saved
LoRA loads back into identical images; prior preservation is Ruiz et al.'s eq. 2; bad inputs end
in one SDLibError that names the argument, before anything is changed."""
import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import sdlib
from sdlib import embeddings as E
from sdlib import finetune as FT
from sdlib.builtin import concept
from sdlib.testing import twins

PROMPT = "a sks triangle"  # DreamBooth's rare-token prompt
TOKEN = "<pt>"
RANK = 4


def fork(sd):
    """A copy of the bundle whose tokenizer, text encoder and UNet a test may change."""
    return dataclasses.replace(sd, tokenizer=copy.deepcopy(sd.tokenizer),
                               text_encoder=copy.deepcopy(sd.text_encoder),
                               unet=copy.deepcopy(sd.unet))


@pytest.fixture(scope="module", autouse=True)
def session_sd_untouched(sd):
    """No test here may leave the session's shared bundle changed."""
    n, unet = len(sd.tokenizer), {k: v.clone() for k, v in sd.unet.state_dict().items()}
    yield
    assert len(sd.tokenizer) == n and not FT.has_lora(sd)
    assert all(torch.equal(v, unet[k]) for k, v in sd.unet.state_dict().items())


@pytest.fixture(scope="module")
def mine(sd):
    return fork(sd)


@pytest.fixture
def lora(mine):
    """`mine`, with its LoRA taken off again after the test."""
    yield mine
    FT.remove_lora(mine)


@pytest.fixture(scope="module")
def pictures(sd):
    return concept.concept_images(64, n=4)  # 4 purple triangles at 64 px (the mechanics, cheaply), 4 captions


def first_batch(sd, x0, batch_size, seed):
    """The (image index, t, noise) of a training loop's first step: both loops draw the images
    first, then t and noise, from one CPU generator seeded with `seed`."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, len(x0), (batch_size,), generator=g)
    return (idx, *E.draw_t_and_noise(sd, x0[idx], g))


# ---------------------------------------------------------------- the objective
@torch.no_grad()
def test_diffusion_loss_is_diffusers_training_loss(sd, pictures):
    """Against diffusers' own steps: scheduler.add_noise, then MSE to the noise (epsilon model)."""
    x0, emb = sdlib.encode(sd, pictures[0][:2]), sdlib.encode_text(sd, ["a triangle", "a circle"])
    loss = FT.diffusion_loss(sd, x0, emb, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    t = torch.randint(0, sd.scheduler.config.num_train_timesteps, (2,), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    output = sd.unet(sd.scheduler.add_noise(x0, noise, t), t, encoder_hidden_states=emb).sample
    assert sd.scheduler.config.prediction_type == "epsilon"
    assert torch.allclose(loss, F.mse_loss(output, noise), rtol=1e-5, atol=0)


@torch.no_grad()
def test_loss_targets_v_on_a_v_prediction_twin(tmp_path):
    """On SD 2.1's twin the target is diffusers' scheduler.get_velocity(x0, noise, t), not the noise."""
    v2 = sdlib.load_sd(str(twins.build_twin("sd-2-1", tmp_path / "sd-2-1", sample_size=8)),
                       device="cpu")
    assert v2.scheduler.config.prediction_type == "v_prediction"
    x0 = torch.randn((2, 4, 8, 8), generator=torch.Generator().manual_seed(1))
    emb = sdlib.encode_text(v2, ["a cat", "a dog"])
    loss = FT.diffusion_loss(v2, x0, emb, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    t = torch.randint(0, v2.scheduler.config.num_train_timesteps, (2,), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    output = v2.unet(v2.scheduler.add_noise(x0, noise, t), t, encoder_hidden_states=emb).sample
    assert torch.allclose(loss, F.mse_loss(output, v2.scheduler.get_velocity(x0, noise, t)),
                          rtol=1e-5, atol=0)
    assert not torch.allclose(loss, F.mse_loss(output, noise), rtol=1e-2)  # the choice matters


# ---------------------------------------------------------------- textual inversion
def test_textual_inversion_step_lowers_the_loss_and_moves_only_its_row(mine, pictures):
    images, captions = pictures
    table = mine.text_encoder.get_input_embeddings().weight.clone()  # (V, D) before
    x0 = sdlib.encode(mine, images)
    idx, t, noise = first_batch(mine, x0, 4, seed=5)

    def loss_on_first_batch(word, vector=None):
        emb = E.edit_embeddings(mine, [captions[i].format(word) for i in idx],
                                None if vector is None else {word: vector})
        with torch.no_grad():
            return E.denoising_loss(mine, x0[idx], emb, t, noise).item()

    vector, losses = FT.train_textual_inversion(mine, images, captions, TOKEN, "triangle",
                                                steps=1, seed=5)
    before = loss_on_first_batch("triangle")
    assert losses == [before]  # step 0 learned on exactly this batch
    assert loss_on_first_batch(TOKEN, vector) < before
    after = mine.text_encoder.get_input_embeddings().weight  # (V + 1, D)
    token_id = mine.tokenizer.convert_tokens_to_ids(TOKEN)
    assert after.shape[0] == len(table) + 1 and token_id == len(table)
    assert torch.equal(after[:len(table)], table)  # every other row as it was
    assert torch.equal(after[token_id], vector)  # the row is the learned vector
    assert vector.numel() == mine.text_encoder.config.hidden_size  # D trainable numbers
    typed = sdlib.encode_text(mine, "a large <pt>")  # the real encoder reads the new row
    assert (typed - E.edit_embeddings(mine, "a large <pt>", {TOKEN: vector})).abs().max() < 1e-5


def test_textual_inversion_reruns_in_place_and_saves_for_diffusers(mine, sd, pictures, tmp_path):
    images, captions = pictures
    a, losses_a = FT.train_textual_inversion(mine, images, captions, TOKEN, "triangle", steps=2)
    n = len(mine.tokenizer)
    seen = []
    b, losses_b = FT.train_textual_inversion(mine, images, captions, TOKEN, "triangle", steps=2,
                                             callback=lambda step, loss: seen.append((step, loss)))
    assert torch.equal(a, b) and losses_a == losses_b  # seeded; started again from "triangle"
    assert len(mine.tokenizer) == n  # a re-run cell adds nothing
    assert seen == list(enumerate(losses_b))
    path = FT.save_textual_inversion(tmp_path / "pt.safetensors", TOKEN, b, steps=2)
    token, vector, meta = E.load_embedding(path)
    assert (token, meta["steps"]) == (TOKEN, "2") and torch.equal(vector, b)
    other = fork(sd)
    other.pipeline().load_textual_inversion(str(path))  # diffusers reads the file
    assert torch.equal(sdlib.encode_text(other, "a <pt> on the left"),
                       sdlib.encode_text(mine, "a <pt> on the left"))


# ---------------------------------------------------------------- DreamBooth-LoRA
def test_lora_counts_freezes_and_comes_off(lora, sd):
    layers = [m for name, m in sd.unet.named_modules()
              if any(name.endswith("." + target) for target in FT.LORA_TARGETS)]
    expected = sum(RANK * (m.in_features + m.out_features) for m in layers)  # A (r, in), B (out, r)
    before = {k: v.clone() for k, v in lora.unet.state_dict().items()}
    assert FT.add_lora(lora, rank=RANK) == expected
    assert FT.add_lora(lora, rank=RANK) == expected  # a re-run replaces, it does not stack
    trainable = [name for name, p in lora.unet.named_parameters() if p.requires_grad]
    assert len(trainable) == 2 * len(layers) and all("lora_" in name for name in trainable)
    assert all(p.dtype == torch.float32 for p in FT.lora_params(lora))
    FT.remove_lora(lora)
    after = lora.unet.state_dict()
    assert not FT.has_lora(lora) and after.keys() == before.keys()
    assert all(torch.equal(after[k], v) for k, v in before.items())
    assert not any(p.requires_grad for p in lora.unet.parameters())


def test_lora_step_lowers_the_loss_on_its_batch(lora, pictures):
    FT.add_lora(lora)
    x0, emb = sdlib.encode(lora, pictures[0]), sdlib.encode_text(lora, PROMPT)
    idx, t, noise = first_batch(lora, x0, 4, seed=5)
    with torch.no_grad():
        before = E.denoising_loss(lora, x0[idx], emb, t, noise).item()
    losses = FT.train_dreambooth_lora(lora, pictures[0], PROMPT, steps=1, seed=5)
    with torch.no_grad():
        after = E.denoising_loss(lora, x0[idx], emb, t, noise).item()
    assert losses == [before] and after < before


def test_lora_training_is_seeded_and_calls_back(lora, pictures):
    runs = []
    for _ in range(2):
        FT.add_lora(lora, seed=1)
        seen = []
        losses = FT.train_dreambooth_lora(lora, pictures[0], PROMPT, steps=2, seed=3,
                                          callback=lambda step, loss: seen.append((step, loss)))
        assert seen == list(enumerate(losses))
        runs.append((losses, [p.detach().clone() for p in FT.lora_params(lora)]))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))


def test_lora_save_then_load_gives_identical_images(lora, sd, pictures, tmp_path):
    n = FT.add_lora(lora, rank=RANK, alpha=8)  # alpha != rank: the file must carry the scale
    FT.train_dreambooth_lora(lora, pictures[0], PROMPT, steps=3, lr=1e-2)
    kw = dict(num_steps=4, seed=2, output="tensor")
    trained = sdlib.generate(lora, PROMPT, **kw)
    with FT.without_lora(lora):
        assert torch.equal(sdlib.generate(lora, PROMPT, **kw), sdlib.generate(sd, PROMPT, **kw))
    assert not torch.equal(trained, sdlib.generate(sd, PROMPT, **kw))  # the LoRA changed it
    path = FT.save_lora(lora, tmp_path / "lora")
    assert path.name == "pytorch_lora_weights.safetensors"
    assert 4 * n < path.stat().st_size < 4 * n + 40_000  # n fp32 numbers, names and metadata
    FT.remove_lora(lora)
    FT.load_lora(lora, tmp_path / "lora")
    assert torch.equal(sdlib.generate(lora, PROMPT, **kw), trained)
    assert all(p.dtype == torch.float32 for p in FT.lora_params(lora))  # trainable again


def test_lora_round_trip_is_exact_on_an_fp16_model(tmp_path, pictures):
    """The model in fp16 (as on a GPU), the adapters in fp32: trained, saved, loaded, equal. On SD
    v1.4's twin at 64 px: fp16 on a CPU is slow, and the built-in model took 32 s here."""
    folder = twins.build_twin("sd-v1-4", tmp_path / "twin", sample_size=8, text_layers=2)
    half = sdlib.load_sd(str(folder), device="cpu", dtype="fp16")
    FT.add_lora(half)
    FT.train_dreambooth_lora(half, pictures[0], PROMPT, steps=2, lr=1e-2)
    kw = dict(num_steps=2, seed=2, output="tensor")
    trained = sdlib.generate(half, PROMPT, **kw)
    FT.save_lora(half, tmp_path / "lora")
    FT.load_lora(half, tmp_path / "lora")
    assert torch.equal(sdlib.generate(half, PROMPT, **kw), trained)


def test_a_lora_that_does_not_fit_is_one_line_and_leaves_no_adapter(lora, tmp_path):
    FT.add_lora(lora)
    path = FT.save_lora(lora, tmp_path)
    state = load_file(str(path))
    key = next(k for k in state if k.endswith("lora.down.weight"))
    state[key] = torch.zeros(RANK, state[key].shape[1] + 1)  # as if made for a wider model
    save_file(state, str(path), metadata=safe_open(str(path), "pt").metadata())
    with pytest.raises(sdlib.SDLibError, match=r"another model\?\): size mismatch"):
        FT.load_lora(lora, tmp_path)
    assert not FT.has_lora(lora)


def test_prior_preservation_is_eq_2(lora, sd, pictures):
    """L = L_instance + lambda L_prior: the first step's loss is linear in lambda, and at
    lambda = 0 it is the loss without class images."""
    FT.add_lora(lora)
    kw = dict(seed=1, num_steps=2, output="tensor")
    class_images = FT.class_images_for(lora, "a triangle", 2, **kw)
    assert torch.equal(class_images, sdlib.generate(sd, ["a triangle"] * 2, **kw))  # frozen model

    def first_loss(**prior):
        FT.add_lora(lora)  # the same start for every run
        return FT.train_dreambooth_lora(lora, pictures[0], PROMPT, steps=1, **prior)[0]

    plain = first_loss()
    loss = {w: first_loss(class_images=class_images, class_prompt="a triangle", prior_weight=w)
            for w in (0, 1, 2)}
    assert loss[0] == plain and loss[1] > plain
    assert loss[2] - loss[0] == pytest.approx(2 * (loss[1] - loss[0]), rel=1e-5)


# ---------------------------------------------------------------- bad inputs
IMG = Image.new("RGB", (64, 64), "white")
ODD = Image.new("RGB", (60, 60), "white")
X0 = torch.zeros(1, 4, 8, 8)

BAD = [  # (case, call on a bundle with a LoRA or without, match)
    ("loss generator 0", False, lambda m: FT.diffusion_loss(m, X0, sdlib.encode_text(m, "a"), 0), "generator must be a CPU"),
    ("loss x0 3-d", False, lambda m: FT.diffusion_loss(m, X0[0], sdlib.encode_text(m, "a"), torch.Generator()), "x0 must be"),
    ("ti token 5", False, lambda m: FT.train_textual_inversion(m, [IMG], ["a {}"], 5, "circle", 1), "token must be"),
    ("ti token 'cat'", False, lambda m: FT.train_textual_inversion(m, [IMG], ["a {}"], "cat</w>", "circle", 1), "token 'cat</w>'.*own words"),
    ("ti init_word 2 tokens", False, lambda m: FT.train_textual_inversion(m, [IMG], ["a {}"], "<x>", "purpletriangle", 1), "init_word"),
    ("ti caption without {}", False, lambda m: FT.train_textual_inversion(m, [IMG], ["a circle"], "<x>", "circle", 1), "captions must be templates"),
    ("ti steps 0", False, lambda m: FT.train_textual_inversion(m, [IMG], ["a {}"], "<x>", "circle", 0), "steps must be"),
    ("ti batch_size 0", False, lambda m: FT.train_textual_inversion(m, [IMG], ["a {}"], "<x>", "circle", 1, batch_size=0), "batch_size must be"),
    ("ti callback 3", False, lambda m: FT.train_textual_inversion(m, [IMG], ["a {}"], "<x>", "circle", 1, callback=3), "callback must be a function"),
    ("lora rank 0", False, lambda m: FT.add_lora(m, rank=0), "rank must be"),
    ("lora alpha -1", False, lambda m: FT.add_lora(m, alpha=-1), "alpha must be"),
    ("lora seed -1", False, lambda m: FT.add_lora(m, seed=-1), "seed must be"),
    ("train before add_lora", False, lambda m: FT.train_dreambooth_lora(m, [IMG], PROMPT, 1), "add_lora"),
    ("train prompt list", True, lambda m: FT.train_dreambooth_lora(m, [IMG], [PROMPT], 1), "prompt must be one prompt"),
    ("train steps '3'", True, lambda m: FT.train_dreambooth_lora(m, [IMG], PROMPT, "3"), "steps must be"),
    ("train lr 0", True, lambda m: FT.train_dreambooth_lora(m, [IMG], PROMPT, 1, lr=0), "lr must be"),
    ("train class_images alone", True, lambda m: FT.train_dreambooth_lora(m, [IMG], PROMPT, 1, class_images=[IMG]), "class_images and class_prompt"),
    ("train prior_weight -1", True, lambda m: FT.train_dreambooth_lora(m, [IMG], PROMPT, 1, class_images=[IMG], class_prompt="a", prior_weight=-1), "prior_weight must be"),
    ("train images 60 px", True, lambda m: FT.train_dreambooth_lora(m, [ODD], PROMPT, 1), "images: image is 60x60"),
    ("train class_images 60 px", True, lambda m: FT.train_dreambooth_lora(m, [IMG], PROMPT, 1, class_images=[ODD], class_prompt="a"), "class_images: image is 60x60"),
    ("class_images_for n 0", False, lambda m: FT.class_images_for(m, "a triangle", 0), "n must be"),
    ("class_images_for prompt None", False, lambda m: FT.class_images_for(m, None, 2), "class_prompt must be one prompt"),
    ("save_lora without LoRA", False, lambda m: FT.save_lora(m, "out"), "no LoRA to save"),
    ("save_lora folder 3", True, lambda m: FT.save_lora(m, 3), "folder must be a folder path"),
    ("load_lora empty folder", False, lambda m: FT.load_lora(m, "."), "folder must hold a LoRA"),
]


@pytest.mark.parametrize("with_lora,call,match", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_inputs_are_one_line_and_change_nothing(lora, with_lora, call, match):
    if with_lora:
        FT.add_lora(lora)
    n, params = len(lora.tokenizer), [p.clone() for p in lora.unet.parameters()]
    with pytest.raises(sdlib.SDLibError, match=match):
        call(lora)
    assert len(lora.tokenizer) == n and FT.has_lora(lora) == with_lora
    assert all(torch.equal(a, b) for a, b in zip(params, lora.unet.parameters()))
