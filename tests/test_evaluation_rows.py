"""The evaluation rows (side, corner, size, two objects) measure what they say: ground-truth renders
of every prompt score 100 %, renders with the object in the wrong place or size score 0 %, at the
model's 128 px and at 64 px. No model runs here: `generate` is replaced by the renderer."""
import dataclasses
import json
from collections import Counter

import numpy as np
import pytest

from sdlib.builtin import checker as C
from sdlib.builtin import eval_sets as E
from sdlib.builtin import evaluate
from sdlib.builtin import scenes as S
from sdlib.errors import SDLibError

N = 48  # the goal table's prompts per row: 8 per held-out pair
SIZES = (64, 128)
OPPOSITE = {"left": "right", "right": "left", "top": "bottom", "bottom": "top",
            "top left": "bottom right", "bottom right": "top left",
            "top right": "bottom left", "bottom left": "top right"}


def _mirrored(obj):
    """The same object drawn at the opposite side or corner (mirrored along the named axes)."""
    col, row = S.POSITIONS[obj.position]
    cx, cy = obj.center
    return dataclasses.replace(obj, position=OPPOSITE[obj.position],
                               center=(1 - cx if col else cx, 1 - cy if row else cy))


def _swapped(scene):
    """Two objects, each drawn where the other should be."""
    a, b = scene.objects
    return dataclasses.replace(scene, objects=(dataclasses.replace(a, center=b.center),
                                               dataclasses.replace(b, center=a.center)))


def _score(row, items, size, wrong=False):
    """A row's checker score on renders of the items' scenes (or of deliberately wrong ones)."""
    if row == "size":
        pairs = [(S.render(b if wrong else a, size), S.render(a if wrong else b, size))
                 for (_, a), (_, b) in items]  # wrong: small and large swapped
        return C.size_ok(pairs, [(a, b) for (_, a), (_, b) in items])
    scenes = [s for _, s in items]
    if row == "two_object":
        drawn = [_swapped(s) if wrong else s for s in scenes]
        return C.two_objects_ok([S.render(s, size) for s in drawn], scenes)
    drawn = [dataclasses.replace(s, objects=(_mirrored(s.main),)) if wrong else s for s in scenes]
    return C.position_ok([S.render(s, size) for s in drawn], scenes)


SETS = {"side": E.side_prompts, "corner": E.corner_prompts, "size": E.size_pairs,
        "two_object": E.two_object_prompts}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("row", list(SETS))
def test_ground_truth_scores_100_and_wrong_renders_0(row, size):
    items = SETS[row](N, seed=0)
    right = _score(row, items, size)
    assert right["n"] == N and right["acc"] == 1.0, [p for (p, _), ok in
                                                     zip(items, right["ok"]) if not ok]
    wrong = _score(row, items, size, wrong=True)
    assert wrong["acc"] == 0.0, wrong


@pytest.mark.parametrize("row", list(SETS))
def test_sets_are_deterministic_and_seeded(row):
    assert SETS[row](12, seed=3) == SETS[row](12, seed=3)
    assert SETS[row](12, seed=3) != SETS[row](12, seed=4)
    assert SETS[row](12, seed=3) == SETS[row](24, seed=3)[:12]  # more prompts extend, not reshuffle


def test_each_held_out_pair_and_position_equally_often():
    for make, positions in ((E.side_prompts, E.SIDES), (E.corner_prompts, E.CORNERS)):
        objs = [s.main for _, s in make(N, seed=0)]
        assert Counter((o.colour, o.shape) for o in objs) == {p: N // 6 for p in S.HELD_OUT}
        combos = Counter((o.colour, o.shape, o.position) for o in objs)
        assert len(combos) == 6 * len(positions) and set(combos.values()) == {N // 24}
    pairs = E.size_pairs(N, seed=0)
    assert Counter((a.main.colour, a.main.shape) for (_, a), _ in pairs) == \
        {p: N // 6 for p in S.HELD_OUT}
    scenes = [s for _, s in E.two_object_prompts(N, seed=0)]
    for k in (0, 1):
        assert Counter((s.objects[k].colour, s.objects[k].shape) for s in scenes) == \
            {p: N // 6 for p in S.HELD_OUT}
    assert all(s.objects[0].colour != s.objects[1].colour for s in scenes)
    assert Counter(tuple(o.position for o in s.objects) for s in scenes) == \
        {layout: N // 4 for layout in E.LAYOUTS}


def test_prompts_say_the_position_and_size_in_the_captions_words():
    for make in (E.side_prompts, E.corner_prompts):
        items = make(N, seed=0)
        for prompt, scene in items:
            o = scene.main
            assert prompt.startswith(("a ", "an ")) and f"{o.colour} {o.shape}" in prompt
            assert prompt.endswith(S.POSITION_WORDS[o.position]), prompt
            assert len(scene.objects) == 1 and (o.colour, o.shape) in S.HELD_OUT
    corner_phrases = {p.split(" ", 3)[3] for p, _ in E.corner_prompts(N, seed=0)}
    assert corner_phrases >= {"in the top left corner", "at the top left"}  # varied wording
    for (small_prompt, small), (large_prompt, large) in E.size_pairs(N, seed=0):
        assert small_prompt.split()[1] in S.SIZE_WORDS["small"], small_prompt
        assert large_prompt.split()[1] in S.SIZE_WORDS["large"], large_prompt
        assert small_prompt.split()[2:] == large_prompt.split()[2:]  # same colour and shape
        a, b = small.main, large.main
        assert (a.size, b.size) == ("small", "large") and a.position == b.position
        assert a.rgb == b.rgb and small.background == large.background  # one sub-seed for both
    for prompt, scene in E.two_object_prompts(N, seed=0):
        halves = [f"{o.colour} {o.shape} {S.POSITION_WORDS[o.position][0]}" for o in scene.objects]
        first, second = prompt.split(" and ")
        assert first.split(" ", 1)[1] == halves[0] and second.split(" ", 1)[1] == halves[1], prompt


def test_in_named_part():
    assert C.in_named_part((0.2, 0.9), "left") and not C.in_named_part((0.4, 0.5), "left")
    assert C.in_named_part((0.8, 0.2), "top right") and not C.in_named_part((0.8, 0.5), "top right")
    assert C.in_named_part((0.5, 0.5), "middle") and not C.in_named_part((0.2, 0.5), "middle")
    assert C.in_named_part((0.45, 0.1), "left", parts=2)
    with pytest.raises(SDLibError):
        C.in_named_part((0.5, 0.5), "middle", parts=2)


def test_noise_blob_size_scales_with_the_image():
    """MIN_AREA is 12 px at 64 px and 4x that at 128 px: a 5x5 speck is an object at 64 px but
    noise at 128 px, where the same speck scaled (10x10) is an object again."""
    def speck(size, side):
        img = np.full((size, size, 3), 250, np.uint8)
        img[20:20 + side, 20:20 + side] = S.COLOURS["red"]
        return img
    assert C.judge(speck(64, 5))["n_objects"] == 1
    assert C.judge(speck(128, 5))["n_objects"] == 0
    assert C.judge(speck(128, 10))["n_objects"] == 1


class _Renderer:
    """Stands in for `sampler.generate`: draws the ground truth of each prompt (or its mirror
    image), and records (prompts, seed, guidance_scale) of every call."""

    def __init__(self, size, wrong=False):
        self.size, self.calls, self.truth = size, [], {}
        for make in (E.side_prompts, E.corner_prompts, E.two_object_prompts):
            for prompt, scene in make(N, seed=0):
                self.truth[prompt] = (_swapped(scene) if len(scene.objects) == 2 else
                                      dataclasses.replace(scene, objects=(_mirrored(scene.main),))
                                      ) if wrong else scene
        for (p_small, small), (p_large, large) in E.size_pairs(N, seed=0):
            self.truth[p_small], self.truth[p_large] = (large, small) if wrong else (small, large)

    def __call__(self, sd, prompts, *, num_steps, guidance_scale, seed, scheduler):
        self.calls.append((list(prompts), seed, guidance_scale))
        return [S.render(self.truth[p], self.size) for p in prompts]


@pytest.mark.parametrize("wrong", [False, True])
def test_evaluate_wires_every_row(monkeypatch, wrong):
    fake = _Renderer(128, wrong)
    monkeypatch.setattr(evaluate, "generate", fake)
    res = evaluate.evaluate(None, n=12, rows=evaluate.PROMPT_ROWS)
    keys = [f"cfg{gs}_{row}_acc" for gs in (7.5, 1.0) for row in evaluate.PROMPT_ROWS]
    assert list(res) == keys
    assert set(res.values()) == {0.0 if wrong else 1.0}, res
    assert {gs for _, _, gs in fake.calls} == {7.5, 1.0}
    size_calls = [(seed, prompts) for prompts, seed, gs in fake.calls
                  if gs == 7.5 and prompts[0].split()[1] in S.SIZE_WORDS["small"] +
                  S.SIZE_WORDS["large"]]
    (seed_small, small), (seed_large, large) = size_calls
    assert seed_small == seed_large and len(small) == len(large) == 12  # same starting noise


def test_rows_option_picks_rows(monkeypatch):
    monkeypatch.setattr(evaluate, "generate", _Renderer(64))
    res = evaluate.evaluate(None, n=6, rows=("corner",), scales=(7.5,))
    assert res == {"cfg7.5_corner_acc": 1.0}
    with pytest.raises(SDLibError, match="rows must be one of"):
        evaluate.evaluate(None, rows=("sides",))


def test_card_shows_each_value_beside_its_goal(tmp_path):
    (tmp_path / "scheduler").mkdir()
    (tmp_path / "scheduler" / "scheduler_config.json").write_text(
        json.dumps({"_class_name": "DDIMScheduler"}))
    res = {"vae_psnr_scenes_db": 30.123, "cfg7.5_colour_acc": 1.0, "cfg7.5_side_acc": 0.9375,
           "cfg1.0_side_acc": 0.5}
    evaluate.write_card(tmp_path, res, 48, "recipe")
    card = (tmp_path / "README.md").read_text()
    assert "| measure | value | goal |" in card
    assert "| vae_psnr_scenes_db | 30.12 | >= 32 |" in card
    assert "| cfg7.5_colour_acc | 100.0 % | 100 % |" in card
    assert "| cfg7.5_side_acc | 93.8 % | >= 90 % |" in card
    assert "| cfg1.0_side_acc | 50.0 % | clearly below CFG 7.5 |" in card
    assert evaluate.goals_met(res) == {"cfg7.5_colour_acc": True, "cfg7.5_side_acc": True,
                                       "vae_psnr_scenes_db": False}
    assert evaluate.goals_met({"size_mb": 61, "seconds_per_25_step_image": 1.5}) == {
        "size_mb": False, "seconds_per_25_step_image": True}
    assert evaluate.goal_text("size_mb") == "<= 60"
