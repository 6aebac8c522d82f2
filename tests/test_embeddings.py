"""Edited embeddings equal what the text encoder computes for the same words; learned-embedding
files load into diffusers' pipeline exactly as into ours; textual inversion lowers the loss."""
import copy
import dataclasses

import pytest
import torch
from safetensors.torch import save_file

import sdlib
from sdlib import embeddings as E
from sdlib.builtin import concept
from sdlib import text

PROMPT = "a large red circle on the left"


def fork(sd):
    """A copy of the bundle whose tokenizer and text encoder may be changed (the session's not)."""
    return dataclasses.replace(sd, tokenizer=copy.deepcopy(sd.tokenizer),
                               text_encoder=copy.deepcopy(sd.text_encoder))


def diff(a, b):
    return float((a - b).abs().max())


def test_word_id_and_vector(sd):
    i = E.word_id(sd.tokenizer, "red")
    assert sd.tokenizer.convert_ids_to_tokens(i) == "red</w>"
    assert torch.equal(E.word_vector(sd, "red"), sd.text_encoder.get_input_embeddings().weight[i])
    with pytest.raises(sdlib.SDLibError, match="CLIP tokens"):
        E.word_id(sd.tokenizer, "purpletriangle")


def test_unedited_embeddings_equal_clip(sd):
    ids = text.tokenize(sd.tokenizer, [PROMPT, ""]).ids
    x = E.input_embeddings(sd, [PROMPT, ""])
    assert diff(x, text.embedding_layer(sd.text_encoder)(input_ids=ids)) < 1e-6
    assert diff(E.edit_embeddings(sd, [PROMPT, ""]), sd.text_encoder(ids)[0]) < 1e-5


def test_encode_with_grad_is_encode_embeddings(sd):
    x = E.input_embeddings(sd, PROMPT).requires_grad_()
    out = text.encode_embeddings_with_grad(sd.text_encoder, x)
    assert torch.equal(out, text.encode_embeddings(sd.text_encoder, x))
    out[0, 4].sum().backward()  # position 4 ("circle") sees positions 0..4 only: the causal mask
    assert x.grad[0, :5].abs().sum() > 0 and x.grad[0, 5:].abs().sum() == 0


def test_replacing_a_word_equals_typing_the_other(sd):
    edited = E.replace_word(sd, PROMPT, "red", "blue")
    typed = sdlib.encode_text(sd, PROMPT.replace("red", "blue"))
    assert edited.shape == (1, 77, typed.shape[-1])
    assert diff(edited, typed) < 1e-5
    assert diff(edited, sdlib.encode_text(sd, PROMPT)) > 1e-3  # it did change something


def test_mix_words_endpoints_and_middle(sd):
    mixed = E.mix_words(sd, PROMPT, "red", "blue", [0, 0.5, 1])
    assert mixed.shape[0] == 3
    assert diff(mixed[0], sdlib.encode_text(sd, PROMPT)[0]) < 1e-5
    assert diff(mixed[2], sdlib.encode_text(sd, PROMPT.replace("red", "blue"))[0]) < 1e-5
    half = (E.word_vector(sd, "red") + E.word_vector(sd, "blue")) / 2
    assert diff(mixed[1], E.replace_word(sd, PROMPT, "red", half)[0]) < 1e-6
    assert min(diff(mixed[1], mixed[0]), diff(mixed[1], mixed[2])) > 1e-4


def test_mix_prompts_is_a_straight_line(sd):
    a, b = sdlib.encode_text(sd, "a red circle"), sdlib.encode_text(sd, "a small blue square")
    mixed = E.mix_prompts(sd, "a red circle", "a small blue square", [0, 0.25, 1])
    assert mixed.shape == (3, 77, a.shape[-1])
    assert diff(mixed[0], a[0]) == 0 and diff(mixed[2], b[0]) < 1e-6
    assert diff(mixed[1], 0.75 * a[0] + 0.25 * b[0]) < 1e-6


def test_edit_errors_are_one_line(sd):
    with pytest.raises(sdlib.SDLibError, match="not in every prompt"):
        E.edit_embeddings(sd, PROMPT, {"blue": E.word_vector(sd, "red")})
    with pytest.raises(sdlib.SDLibError, match="must be"):
        E.edit_embeddings(sd, PROMPT, {"red": torch.zeros(3)})


def test_add_token_is_a_new_row_and_one_id(sd):
    mine = fork(sd)
    vec = (E.word_vector(sd, "red") + E.word_vector(sd, "blue")) / 2
    n = len(sd.tokenizer)
    assert E.add_token(mine, "<redblue>", vec) == n
    ids = text.tokenize(mine.tokenizer, "a large <redblue> circle").ids[0, :6].tolist()
    assert ids[3] == n and len(sd.tokenizer) == n  # the session's bundle is untouched
    assert torch.equal(mine.text_encoder.get_input_embeddings().weight[n], vec)
    via_token = sdlib.encode_text(mine, "a large <redblue> circle")
    via_edit = E.mix_words(sd, "a large red circle", "red", "blue", 0.5)
    assert diff(via_token, via_edit) < 1e-5
    with pytest.raises(sdlib.SDLibError, match="already"):
        E.add_token(mine, "<redblue>", vec)
    with pytest.raises(sdlib.SDLibError, match="shape"):
        E.add_token(mine, "<other>", vec[:3])


def test_add_token_again_with_replace_sets_the_row_and_grows_nothing(sd):
    mine = fork(sd)
    red, blue = E.word_vector(sd, "red"), E.word_vector(sd, "blue")
    n = len(sd.tokenizer)
    new_id = E.add_token(mine, "<w>", red)
    assert E.add_token(mine, "<w>", red, replace=True) == new_id  # a notebook cell run again
    table = mine.text_encoder.get_input_embeddings().weight
    assert len(mine.tokenizer) == n + 1 and table.shape[0] == n + 1
    assert E.add_token(mine, "<w>", blue, replace=True) == new_id  # a new vector, the same row
    table = mine.text_encoder.get_input_embeddings().weight
    assert table.shape[0] == n + 1 and torch.equal(table[new_id], blue)
    assert diff(sdlib.encode_text(mine, "a large <w> circle"),
                sdlib.encode_text(sd, "a large blue circle")) < 1e-5
    with pytest.raises(sdlib.SDLibError, match=r"already in the tokenizer \(added earlier.*replace=True"):
        E.add_token(mine, "<w>", red)  # without replace=True a second add is still a mistake
    before = table.clone()
    for word in ("red</w>", "<|endoftext|>"):  # the tokenizer's own words: never overwritten
        with pytest.raises(sdlib.SDLibError, match="one of its own words"):
            E.add_token(mine, word, blue, replace=True)
    with pytest.raises(sdlib.SDLibError, match="replace must be True or False"):
        E.add_token(mine, "<w>", red, replace="yes")
    assert torch.equal(mine.text_encoder.get_input_embeddings().weight, before)
    assert len(mine.tokenizer) == n + 1


def test_loading_the_same_file_twice_with_replace_is_one_token(sd, tmp_path):
    vec = torch.randn(E.word_vector(sd, "red").shape, generator=torch.Generator().manual_seed(1))
    path = E.save_embedding(tmp_path / "thing.safetensors", "<thing>", vec)
    mine = fork(sd)
    assert E.load_textual_inversion(mine, path) == "<thing>"
    once = sdlib.encode_text(mine, "a small <thing> at the top")
    assert E.load_textual_inversion(mine, path, replace=True) == "<thing>"
    assert len(mine.tokenizer) == len(sd.tokenizer) + 1
    assert torch.equal(sdlib.encode_text(mine, "a small <thing> at the top"), once)
    with pytest.raises(sdlib.SDLibError, match="replace=True"):
        E.load_textual_inversion(mine, path)


def test_file_loads_into_diffusers_pipeline_identically(sd, tmp_path):
    vec = torch.randn(E.word_vector(sd, "red").shape, generator=torch.Generator().manual_seed(0))
    path = E.save_embedding(tmp_path / "learned_embeds.safetensors", "<thing>", vec, note="x")
    token, loaded, meta = E.load_embedding(path)
    assert token == "<thing>" and torch.equal(loaded, vec) and meta == {"note": "x"}
    ours, theirs = fork(sd), fork(sd)
    E.load_textual_inversion(ours, path)
    pipe = theirs.pipeline()
    pipe.load_textual_inversion(str(path))  # diffusers reads our file
    prompt = "a small <thing> at the top"
    assert torch.equal(text.tokenize(ours.tokenizer, prompt).ids,
                       text.tokenize(pipe.tokenizer, prompt).ids)
    ref, _ = pipe.encode_prompt(prompt, "cpu", 1, False)
    assert torch.equal(sdlib.encode_text(ours, prompt), ref)


def test_load_embedding_formats_and_errors(sd, tmp_path):
    vec = E.word_vector(sd, "red")
    save_file({"<a>": vec[None].contiguous()}, str(tmp_path / "a.safetensors"))  # (1, D) layout
    assert torch.equal(E.load_embedding(tmp_path / "a.safetensors")[1], vec)
    save_file({"<a>": vec, "<b>": vec.clone()}, str(tmp_path / "two.safetensors"))
    with pytest.raises(sdlib.SDLibError, match="holds 2"):
        E.load_embedding(tmp_path / "two.safetensors")
    save_file({"<m>": torch.stack([vec, vec])}, str(tmp_path / "m.safetensors"))
    with pytest.raises(sdlib.SDLibError, match="multi-vector"):
        E.load_embedding(tmp_path / "m.safetensors")
    with pytest.raises(sdlib.SDLibError, match="safetensors"):
        E.load_embedding(tmp_path / "learned_embeds.bin")


def test_learning_is_seeded_and_moves_only_the_vector(sd):
    images, captions = concept.concept_images(sd.image_size, n=4)
    table = sd.text_encoder.get_input_embeddings().weight.clone()
    a, losses = E.learn_embedding(sd, images, captions, "triangle", steps=3, seed=1)
    b, _ = E.learn_embedding(sd, images, captions, "triangle", steps=3, seed=1)
    assert torch.equal(a, b) and len(losses) == 3
    assert diff(a, E.word_vector(sd, "triangle")) > 1e-4
    assert torch.equal(table, sd.text_encoder.get_input_embeddings().weight)


def test_shipped_embedding_fits_the_builtin_model_and_is_reproducible(sd, tmp_path):
    token, vec, meta = E.load_embedding(concept.PROJECT_FILE)
    assert token == concept.CONCEPT["token"] and vec.shape == E.word_vector(sd, "red").shape
    assert concept.PROJECT_FILE.stat().st_size < 16_000
    assert meta["fingerprint"] == concept.model_fingerprint(sd), (
        "the shipped embedding was learned on another built-in model: regenerate it with "
        "`python -m sdlib.builtin.concept` and re-execute notebook 03")
    assert (meta["steps"], meta["seed"]) == ("40", "0")
    images, captions = concept.concept_images(sd.image_size)
    assert E.eval_loss(sd, images, captions, "triangle", vec) < E.eval_loss(
        sd, images, captions, "triangle")  # what textual inversion is for
    assert concept.project_embedding(sd) == concept.PROJECT_FILE


def test_learning_the_embedding_is_deterministic(sd, tmp_path):
    """Same machine, same seed, same vector. (Across CPUs it is not bit-identical: Adam's first
    steps are +-lr per component, so a rounding difference near zero flips a sign. The shipped
    file is therefore checked for what it does, above, not for its bits.)"""
    a = E.load_embedding(concept.make_project_embedding(sd, tmp_path / "a.safetensors", steps=4))[1]
    b = E.load_embedding(concept.make_project_embedding(sd, tmp_path / "b.safetensors", steps=4))[1]
    assert diff(a, b) == 0


def test_project_embedding_learns_for_another_model(sd, tmp_path, monkeypatch):
    made = []
    monkeypatch.setenv("SDLIB_CACHE", str(tmp_path))
    monkeypatch.setattr(concept, "model_fingerprint", lambda sd: "another")
    monkeypatch.setattr(concept, "make_project_embedding", lambda sd, path: made.append(path) or path)
    path = concept.project_embedding(sd)
    assert made == [path] and path.parent.parent == tmp_path and "another" in path.name


def test_generate_from_embeddings_uses_one_seed_per_row(sd):
    emb = sdlib.encode_text(sd, [PROMPT, PROMPT])
    images = E.generate_from_embeddings(sd, emb, seed=2, num_steps=3)
    ref = sdlib.generate(sd, PROMPT, seed=2, num_steps=3)
    assert len(images) == 2
    assert sdlib.max_pixel_diff(images[0], ref) == 0 and sdlib.max_pixel_diff(images[1], ref) == 0


def test_nearest_words_rank_by_cosine_similarity(sd):
    """Against a cosine similarity computed here over CLIP's token table, for a vector that is no
    word's (so "the nearest word is itself" cannot pass by accident)."""
    table = sd.text_encoder.get_input_embeddings().weight.float()  # (V, D)
    vec = (E.word_vector(sd, "red") + E.word_vector(sd, "circle")) / 2  # (D,)
    sims = torch.nn.functional.cosine_similarity(table, vec.float()[None], dim=-1)  # (V,)
    best = sims.topk(4).indices.tolist()
    ref = [(sd.tokenizer.convert_ids_to_tokens(i), float(sims[i])) for i in best]

    def same(found, expected):
        return [w for w, _ in found] == [w for w, _ in expected] and \
            all(abs(a - b) < 1e-4 for (_, a), (_, b) in zip(found, expected))

    assert same(E.nearest_words(sd, vec, k=3), ref[:3])
    assert same(E.nearest_words(sd, vec, k=3, exclude=(ref[0][0],)), ref[1:])
    words = ["square", "red", "blue", "circle"]
    by_sim = sorted(words, key=lambda w: -float(sims[E.word_id(sd.tokenizer, w)]))[:2]
    assert same(E.nearest_words(sd, vec, k=2, words=words),
                [(w, float(sims[E.word_id(sd.tokenizer, w)])) for w in by_sim])
