"""The offline CLIP tokenizer reproduces SD v1's vocabulary and ids."""
import pytest
from open_clip.tokenizer import SimpleTokenizer

from sdlib import text
from sdlib.models.clip_tokenizer import VOCAB_SIZE

PROMPTS = ["a photo of a cat", "A photograph of an astronaut riding a horse!",
           "a large red circle on the left", "naïve café, 3 émojis 🙂 and   spaces",
           "purple triangle at the top on a yellow background"]


def test_vocabulary_size_and_special_ids(sd):
    tok = sd.tokenizer
    assert len(tok) == VOCAB_SIZE == 49408
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (49406, 49407, 49407)
    assert tok.model_max_length == 77


def test_known_sd_ids(sd):
    # ids as produced by SD v1's tokenizer (openai/clip-vit-large-patch14)
    assert sd.tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert sd.tokenizer.convert_tokens_to_ids("cat</w>") == 2368


@pytest.mark.parametrize("prompt", PROMPTS)
def test_matches_openai_simple_tokenizer(sd, prompt):
    ref = SimpleTokenizer()  # OpenAI CLIP's own BPE implementation, shipped by open_clip
    ids = sd.tokenizer(prompt).input_ids
    assert ids == [49406] + ref.encode(prompt) + [49407]


def test_tokenize_pads_to_77_and_lists_tokens(sd):
    t = text.tokenize(sd.tokenizer, "a red circle")
    assert t.ids.shape == (1, 77)
    assert t.tokens == ["<|startoftext|>", "a</w>", "red</w>", "circle</w>", "<|endoftext|>"]
    assert t.length == 5 and t.cut == [""]
    assert t.ids[0, 5:].eq(49407).all()


def test_long_prompt_reports_what_was_cut(sd):
    prompt = "a red circle " * 25 + "and finally a green square"  # BOS + 80 words + EOS = 82 tokens
    with pytest.warns(UserWarning, match="82 tokens .* cut: 'and finally a green square'"):
        t = text.tokenize(sd.tokenizer, prompt)
    assert t.ids.shape == (1, 77) and t.length == 77
    assert t.cut == ["and finally a green square"]
    assert int(t.ids[0, -1]) == 49407  # EOS is kept at the last position
