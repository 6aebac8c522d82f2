"""The shipped built-in model still works: a broken or untrained model cannot land.

Small samples, so this is a floor, not the evaluation (`python -m sdlib.evaluate` measures that).
"""
import pytest

from sdlib import builtin, evaluate

pytestmark = pytest.mark.skipif(not (builtin.SHIPPED / "model_index.json").exists(),
                                reason="no trained model shipped in this checkout")


def test_builtin_is_the_shipped_model(sd):
    assert builtin.builtin_path() == builtin.SHIPPED
    assert evaluate.model_megabytes(builtin.SHIPPED) <= 40


def test_vae_round_trip_above_floor(sd):
    assert evaluate.vae_psnr(sd, n=16) > 26.0


def test_guidance_improves_adherence(sd):
    strong = evaluate.adherence(sd, 7.5, n=12)
    weak = evaluate.adherence(sd, 1.0, n=12)
    assert strong["colour_acc"] >= 0.6
    assert strong["colour_acc"] + strong["shape_acc"] > weak["colour_acc"] + weak["shape_acc"]
