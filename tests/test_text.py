"""The hand-run text encoder equals CLIPTextModel, on transformers 4.x and 5.x layouts."""
import torch

from sdlib import text


def ids_of(sd, prompts):
    return text.tokenize(sd.tokenizer, prompts).ids


def test_embed_equals_embedding_layer(sd):
    ids = ids_of(sd, ["a red circle", "a small blue square at the top"])
    ref = text.clip_text_model(sd.text_encoder).embeddings(input_ids=ids)
    assert torch.allclose(text.embed(sd.text_encoder, ids), ref, atol=1e-6)
    assert text.position_embeddings(sd.text_encoder).shape == (1, 77, ref.shape[-1])


def test_encode_embeddings_equals_clip_text_model(sd):
    ids = ids_of(sd, ["a red circle", "a small blue square at the top", ""])
    ref = sd.text_encoder(ids)[0]
    mine = text.encode_embeddings(sd.text_encoder, text.embed(sd.text_encoder, ids))
    assert mine.shape == ref.shape == (3, 77, ref.shape[-1])
    assert (mine - ref).abs().max() < 1e-5
    assert ref.std() > 0.1  # not a degenerate comparison


def test_causal_mask_matters(sd):
    ids = ids_of(sd, "a red circle")
    x = text.embed(sd.text_encoder, ids)
    out = text.encode_embeddings(sd.text_encoder, x)
    x2 = x.clone()
    x2[:, 3] += torch.randn(x.shape[-1], generator=torch.Generator().manual_seed(0))  # change position 3: positions before it must not change, after must
    out2 = text.encode_embeddings(sd.text_encoder, x2)
    assert torch.allclose(out[:, :3], out2[:, :3], atol=1e-6)
    assert (out[:, 3:] - out2[:, 3:]).abs().max() > 1e-3


def test_transformers_4x_layout(sd):
    """4.x wraps the parts in `.text_model`; the helpers must find them there too."""
    class Wrapped(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.text_model = inner

    wrapped = Wrapped(sd.text_encoder)
    ids = ids_of(sd, "a green star")
    ref = sd.text_encoder(ids)[0]
    mine = text.encode_embeddings(wrapped, text.embed(wrapped, ids))
    assert (mine - ref).abs().max() < 1e-5


def test_encode_text_matches_pipeline(sd):
    pipe = sd.pipeline()
    ref, _ = pipe.encode_prompt("a red circle", "cpu", 1, False)
    assert torch.equal(text.encode_text(sd, "a red circle"), ref)


def test_nearest_tokens_finds_the_word_itself(sd):
    ids = ids_of(sd, "circle")
    vec = text.token_embeddings(sd.text_encoder, ids)[0, 1]
    top = text.nearest_tokens(sd.tokenizer, sd.text_encoder, vec, k=3)
    assert top[0][0] == "circle</w>" and abs(top[0][1] - 1.0) < 1e-5
