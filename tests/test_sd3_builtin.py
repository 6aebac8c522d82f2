"""The built-in SD3 in miniature (`sdlib.builtin.sd3`, `sdlib.builtin.train_sd3`): a random build loads
offline with diffusers' StableDiffusion3Pipeline, the trainer reads the text exactly as that pipeline
does, its compact zero tokens compute what the pipeline's 256 do, it trains, resumes and exports a
folder the pipeline loads back."""
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

import sdlib
from sdlib.builtin import sd3, train, train_sd3
from sdlib.models.sd3 import joint_text

J = sd3.TRANSFORMER_CONFIG["joint_attention_dim"]


def encode(texts, ids, max_sequence_length=256):
    """(tokens, pooled) as the pipeline feeds them (`joint_text`)."""
    text = joint_text(texts, ids, max_sequence_length=max_sequence_length, joint_attention_dim=J)
    return text.tokens, text.pooled

PROMPTS = ["a big red circle on the left", "", "two small blue squares at the top"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return sd3.build_sd3(tmp_path_factory.mktemp("sd3") / "random")


@pytest.fixture(scope="module")
def pipe(folder):
    return sd3.load_sd3(folder)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Two training steps on 16 scenes, checkpointed after each."""
    out = tmp_path_factory.mktemp("sd3run") / "run"
    train_sd3.main(["--out", str(out), "--data", "16", "--steps", "2", "--every", "1", "--batch", "4",
                    "--threads", "1"])
    return out


def test_random_folder_loads_offline_and_draws(folder, pipe, monkeypatch):
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel
    from transformers import CLIPTextModelWithProjection

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert isinstance(pipe.transformer, SD3Transformer2DModel)
    assert isinstance(pipe.scheduler, FlowMatchEulerDiscreteScheduler)
    assert all(isinstance(t, CLIPTextModelWithProjection) for t in (pipe.text_encoder, pipe.text_encoder_2))
    assert pipe.text_encoder_3 is None and pipe.tokenizer_3 is None
    assert {m.dtype for m in (pipe.transformer, pipe.vae, pipe.text_encoder, pipe.text_encoder_2)} == {torch.float32}
    assert pipe.vae.config.shift_factor == 0.0 and pipe.vae.config.scaling_factor == sd3.sd3_vae().config.scaling_factor
    image = pipe("a red circle", num_inference_steps=2, output_type="np",
                 generator=torch.Generator().manual_seed(0)).images
    assert image.shape == (1, 128, 128, 3) and torch.isfinite(torch.as_tensor(image)).all()
    assert sd3.folder_megabytes(folder) <= 20.5  # beside the other shipped models: sdlib/models/ <= 120 MB
    for part in ("transformer", "vae", "text_encoder", "text_encoder_2"):
        with safe_open(next((folder / part).glob("*.safetensors")), "pt") as f:
            assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F16"}, part


def test_encode_prompt_is_the_pipelines(pipe):
    ids = train.token_ids(pipe.tokenizer, PROMPTS)
    emb, neg, pooled, neg_pooled = pipe.encode_prompt(PROMPTS, None, None, do_classifier_free_guidance=True)
    got, got_pooled = encode([pipe.text_encoder, pipe.text_encoder_2], ids)
    assert got.shape == (3, 77 + 256, sd3.TRANSFORMER_CONFIG["joint_attention_dim"])
    assert got_pooled.shape == (3, sd3.TRANSFORMER_CONFIG["pooled_projection_dim"])
    assert torch.allclose(got, emb, atol=1e-6) and torch.allclose(got_pooled, pooled, atol=1e-6)
    empty, empty_pooled = encode([pipe.text_encoder, pipe.text_encoder_2],
                                                train.token_ids(pipe.tokenizer, [""] * 3))
    assert torch.allclose(empty, neg, atol=1e-6) and torch.allclose(empty_pooled, neg_pooled, atol=1e-6)
    # other max_sequence_length: as many zero tokens
    emb_8 = pipe.encode_prompt(PROMPTS, None, None, do_classifier_free_guidance=False, max_sequence_length=8)[0]
    got_8 = encode([pipe.text_encoder, pipe.text_encoder_2], ids, max_sequence_length=8)[0]
    assert got_8.shape == (3, 85, got.shape[-1]) and torch.allclose(got_8, emb_8, atol=1e-6)


def test_one_token_with_the_repeated_token_processor_is_the_pipelines_256():
    parts = sd3.new_parts(0)
    transformer, texts = parts["transformer"], [parts["text_encoder"], parts["text_encoder_2"]]
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in transformer.parameters():  # away from adaLN-Zero's identity blocks and zero output
            p.add_(0.05 * torch.randn(p.shape, generator=g))
        ids = torch.randint(0, 49406, (2, 77), generator=g)
        x, t = torch.randn(2, 4, 16, 16, generator=g), torch.tensor([100.0, 900.0])
        full, pooled = encode(texts, ids)  # 77 + 256 tokens, diffusers' processor
        expected = transformer(hidden_states=x, timestep=t, encoder_hidden_states=full,
                               pooled_projections=pooled).sample
        assert sd3.compact_zero_tokens(transformer, 256) == 1
        one = encode(texts, ids, max_sequence_length=1)[0]  # 77 + 1
        got = transformer(hidden_states=x, timestep=t, encoder_hidden_states=one, pooled_projections=pooled).sample
    assert expected.abs().mean() > 0.1
    assert torch.allclose(got, expected, atol=2e-5), (got - expected).abs().max()


def test_the_step_loss_is_the_flow_loss_by_hand():
    """With the step's own draws: x_t = (1 - sigma) x0 + sigma noise, target noise - x0, MSE; the
    transformer on the pipeline's full context (diffusers' processor, 256 zero tokens)."""
    import torch.nn.functional as F
    from diffusers import FlowMatchEulerDiscreteScheduler

    from sdlib.models.flow import FLOW_SCHEDULER_CONFIG

    parts = sd3.new_parts(0)
    transformer, texts = parts["transformer"], [parts["text_encoder"], parts["text_encoder_2"]]
    with torch.no_grad():
        for p in transformer.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(2)))
    scheduler = FlowMatchEulerDiscreteScheduler.from_config(FLOW_SCHEDULER_CONFIG)
    x0_all, ids = torch.randn(6, 4, 16, 16), torch.randint(0, 49406, (6, 3, 77))
    empty = ids[0, 0].clone()
    with torch.no_grad():
        g = torch.Generator().manual_seed(train.step_seed(0, 7))  # the step's draws, in order
        idx = torch.randint(0, 6, (2,), generator=g)
        tok = ids[idx, torch.randint(0, 3, (2,), generator=g)]
        tok[torch.rand(2, generator=g) < 0.5] = empty
        noise = torch.randn(2, 4, 16, 16, generator=g)
        sigma = torch.sigmoid(torch.randn(2, generator=g))  # logit-normal
        x0 = x0_all[idx]
        x_t = (1 - sigma.view(-1, 1, 1, 1)) * x0 + sigma.view(-1, 1, 1, 1) * noise
        emb, pooled = encode(texts, tok)  # what the pipeline feeds
        v = transformer(hidden_states=x_t, timestep=sigma * 1000, encoder_hidden_states=emb,
                        pooled_projections=pooled).sample
        expected = F.mse_loss(v, noise - x0)
        k = sd3.compact_zero_tokens(transformer, 256)
        got = train_sd3.sd3_step_loss(transformer, texts, scheduler, x0_all, ids, empty, 2, 0.5, 0, k, 7)
        # distillation: the target moves a share w of the way to the teacher's velocity at the same x_t, t, caption
        seen = {}

        def teacher(x, t, caption):
            seen.update(x=x, t=t, caption=caption.clone())
            return torch.full_like(x, 0.25)

        w = 0.8
        distilled = train_sd3.sd3_step_loss(transformer, texts, scheduler, x0_all, ids, empty, 2, 0.5, 0, k, 7,
                                            teacher=teacher, teacher_weight=w)
        unused = train_sd3.sd3_step_loss(transformer, texts, scheduler, x0_all, ids, empty, 2, 0.5, 0, k, 7,
                                         teacher=teacher, teacher_weight=0.0)
    assert torch.allclose(got, expected, rtol=1e-5), (got, expected)
    assert torch.allclose(distilled, F.mse_loss(v, (1 - w) * (noise - x0) + w * 0.25), rtol=1e-5)
    assert torch.allclose(seen["x"], x_t, atol=1e-6) and torch.allclose(seen["t"], sigma * 1000, rtol=1e-5)
    assert torch.equal(seen["caption"], tok)
    assert torch.allclose(unused, expected, rtol=1e-5)


def test_repatch_moves_2x2_weights_to_1x1_patches():
    """A warm start across patch sizes: on latents constant over each 2 x 2 patch, the 1 x 1 patch
    embedding answers (at each patch's pixels) what the 2 x 2 one answered; the output layer gives
    each pixel its patch's mean output; every other weight is loaded as it was."""
    from diffusers import SD3Transformer2DModel

    torch.manual_seed(0)
    old = SD3Transformer2DModel(**{**sd3.TRANSFORMER_CONFIG, "patch_size": 2, "pos_embed_max_size": 16})
    state = {k: v + 0.1 * torch.randn_like(v) for k, v in old.state_dict().items()}
    old.load_state_dict(state)
    new = SD3Transformer2DModel(**{**sd3.TRANSFORMER_CONFIG, "patch_size": 1})
    missing, unexpected = new.load_state_dict(sd3.repatch(state, 1), strict=False)
    assert missing == ["pos_embed.pos_embed"] and not unexpected
    x = torch.randn(1, 4, 8, 8).repeat_interleave(2, -1).repeat_interleave(2, -2)  # (1, 4, 16, 16)
    tokens = torch.randn(1, 5, 128)
    with torch.no_grad():
        assert torch.allclose(new.pos_embed.proj(x)[..., ::2, ::2], old.pos_embed.proj(x), atol=1e-5)
        per_pixel = new.proj_out(tokens)  # (1, 5, 4): one latent pixel's channels
        per_patch = old.proj_out(tokens).reshape(1, 5, 2, 2, 4)  # rows (row, column, channel)
        assert torch.allclose(per_pixel, per_patch.mean((2, 3)), atol=1e-5)
    assert torch.equal(new.transformer_blocks[0].attn.to_q.weight, state["transformer_blocks.0.attn.to_q.weight"])
    import sdlib
    with pytest.raises(sdlib.SDLibError, match="patch_size must divide"):
        sd3.repatch(state, 3)


def test_the_flow_teacher_is_the_flow_unet_on_its_own_text():
    """`flow_teacher` returns the shipped flow UNet's velocity, read with its own text encoder, no guidance."""
    import sdlib

    flow = sdlib.load_sd("builtin-flow", device="cpu")
    velocity = train_sd3.flow_teacher("builtin-flow")
    x, t = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(0)), torch.tensor([250.0, 900.0])
    tok = train.token_ids(train.clip_tokenizer(), ["a red circle", ""])  # (2, 77)
    with torch.no_grad():
        expected = flow.unet(x, t, encoder_hidden_states=sdlib.encode_text(flow, ["a red circle", ""])).sample
        got = velocity(x, t, tok)
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()


def test_two_training_steps_run_and_resume_exactly(run, tmp_path):
    rows = [line.split(",") for line in (run / "loss.csv").read_text().splitlines()]
    assert rows[0][0] == "0" and torch.isfinite(torch.tensor(float(rows[0][1])))
    last = sorted(run.glob("step*"))[-1]
    assert last.name == "step0000002"
    init = sd3.new_parts(0)["transformer"].state_dict()
    trained = load_file(last / "transformer.safetensors")
    assert not torch.equal(trained["proj_out.weight"], init["proj_out.weight"])  # it learned
    # stop after step 1, start again: the same weights as the straight run
    again = tmp_path / "again"
    again.mkdir()
    (again / "latents.safetensors").write_bytes((run / "latents.safetensors").read_bytes())
    common = ["--out", str(again), "--data", "16", "--steps", "2", "--every", "1", "--batch", "4", "--threads", "1"]
    train_sd3.main(common + ["--until", "1"])
    train_sd3.main(common)
    resumed = load_file(again / "step0000002" / "ema_transformer.safetensors")
    straight = load_file(last / "ema_transformer.safetensors")
    assert all(torch.equal(resumed[k], straight[k]) for k in straight)


def test_export_reloads_the_ema_weights(run, tmp_path):
    out = tmp_path / "model"
    train_sd3.main(["--out", str(run), "--export", str(out)])
    pipe = sd3.load_sd3(out)
    ema = load_file(sorted(run.glob("step*"))[-1] / "ema_transformer.safetensors")
    got = pipe.transformer.state_dict()
    assert all(torch.equal(got[k], ema[k].half().float()) for k in ema)  # float16 on disk
    ema_text = load_file(sorted(run.glob("step*"))[-1] / "ema_text_encoder_2.safetensors")
    got_text = pipe.text_encoder_2.state_dict()
    assert all(torch.equal(got_text[k], ema_text[k].half().float()) for k in ema_text)
    assert "max_sequence_length=256" in (out / "README.md").read_text()


def test_the_evaluation_writes_every_row_for_the_card(folder, tmp_path):
    from sdlib.builtin import evaluate_sd3

    out = tmp_path / "evaluation.json"
    evaluate_sd3.main(["--sd3", str(folder), "--n", "1", "--sd3-only", "--out", str(out)])
    import json

    card = json.loads(out.read_text())
    figures = card["models"]["builtin-sd3"]
    assert set(evaluate_sd3.ROWS) <= set(figures) and all(0 <= figures[r] <= 1 for r in evaluate_sd3.ROWS)
    assert figures["seconds"] > 0 and figures["params_million"] == pytest.approx(2.29, abs=0.01)
    assert card["defaults"]["builtin-sd3"] == [28, 7.0]


def test_the_evaluation_updates_one_models_figures_and_keeps_the_others(folder, tmp_path):
    """--update replaces the measured model's figures in an existing card (the flow UNet's are
    measured once); a card of another n, or no card, is one clear error."""
    import json

    from sdlib.builtin import evaluate_sd3

    out = tmp_path / "evaluation.json"
    flow = {"colour": 1.0, "shape": 1.0, "side": 1.0, "two_object": 0.5, "seconds": 1.0}
    out.write_text(json.dumps({"n": 1, "defaults": evaluate_sd3.DEFAULTS, "models": {"builtin-flow": flow}}))
    evaluate_sd3.main(["--sd3", str(folder), "--n", "1", "--sd3-only", "--rows", "colour,shape,side,two_object",
                       "--out", str(out), "--update"])
    card = json.loads(out.read_text())
    assert list(card["models"]) == ["builtin-flow", "builtin-sd3"] and card["models"]["builtin-flow"] == flow
    with pytest.raises(sdlib.SDLibError, match="--update: .* n=1"):
        evaluate_sd3.main(["--sd3", str(folder), "--n", "2", "--sd3-only", "--out", str(out), "--update"])
    with pytest.raises(sdlib.SDLibError, match="--update needs an existing --out file"):
        evaluate_sd3.main(["--sd3", str(folder), "--n", "1", "--sd3-only", "--out", str(tmp_path / "none.json"), "--update"])
    with pytest.raises(sdlib.SDLibError, match="exclude each other"):
        evaluate_sd3.main(["--sd3-only", "--flow-only"])


def test_loss_by_noise_level_is_the_flow_loss_at_each_sigma(folder, sd):
    """At each sigma: (the transformer's velocity - (noise - x0))^2 on the seeded training scenes, by
    hand; an eps model is refused."""
    import sdlib
    from sdlib.builtin import evaluate_sd3, scenes
    from sdlib.models.sd3 import transformer_output

    m = sdlib.load_sd(str(folder), device="cpu")
    got = evaluate_sd3.loss_by_noise_level(m, sigmas=(0.25, 0.75), n=2, seed=5)
    images, captions, _ = scenes.make_batch(2, 5, size=m.image_size, as_pil=True)
    with torch.no_grad():
        x0 = sdlib.encode(m, images)
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(5))
        text = sdlib.encode_text(m, captions)
        for sigma in (0.25, 0.75):
            v = transformer_output(m.transformer, (1 - sigma) * x0 + sigma * noise, torch.full((2,), sigma * 1000), text)
            assert got[sigma] == pytest.approx(float(((v - (noise - x0)) ** 2).mean()), rel=1e-5)
    with pytest.raises(sdlib.SDLibError, match="flow-matching model"):
        evaluate_sd3.loss_by_noise_level(sd, n=1)
