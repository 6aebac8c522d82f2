"""The predicted GPU times (sdlib.speed, written by benchmarks/predict_gpu.py): one row per notebook,
counted with real SD step counts, priced at real SD v1.4's size, and bad input refused."""
import importlib.util
import re
from pathlib import Path

import nbformat
import pytest

import sdlib
from sdlib import speed

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _benchmark():
    spec = importlib.util.spec_from_file_location("predict_gpu", ROOT / "benchmarks" / "predict_gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_notebook_has_a_counted_row():
    """A new notebook needs `benchmarks/predict_gpu.py NN` before the teacher's page can predict it."""
    rows = speed.gpu_predictions()["notebooks"]
    assert sorted(rows) == [nb.stem for nb in NOTEBOOKS if nb.stem not in speed.NOT_PREDICTED]
    assert set(speed.NOT_PREDICTED) <= {nb.stem for nb in NOTEBOOKS}
    assert all(row["tflop"] > 0 for row in rows.values()), {k: r["tflop"] for k, r in rows.items()}


def test_prices_are_real_sd_v1_4s():
    """The TFLOP per item in the file are SD v1.4's at 512 px (counted again on the meta device), and
    one guided UNet call is the 1.61 TFLOP notebook 08 quotes for SD v1.4."""
    bench = _benchmark()
    parts = bench.real_parts()
    pred = speed.gpu_predictions()
    assert pred["tflop"]["unet"] == pytest.approx(bench.tflop_per_item(parts, "unet", [4, 8, 8]), rel=1e-3)
    assert pred["tflop"]["vae_decode"] == pytest.approx(bench.tflop_per_item(parts, "vae_decode", [4, 8, 8]), rel=1e-3)
    assert 2 * pred["tflop"]["unet"] == pytest.approx(1.61, abs=0.01)
    assert pred["params_millions"]["unet"] == pytest.approx(859.5, abs=0.1)  # SD v1.4's UNet


def test_07_is_counted_with_its_real_sd_training_steps():
    """The counting run takes 07's SD branch with its real step counts, not the quick ones the
    twin tests use: at least the settings cell's textual-inversion and DreamBooth steps train."""
    source = "\n".join(c.source for c in nbformat.read(ROOT / "notebooks" / "07_new_concepts.ipynb", as_version=4).cells
                       if c.cell_type == "code")
    ti, db, batch = map(int, re.search(r"SD_TI_STEPS, SD_DB_STEPS, SD_BATCH = (\d+), (\d+), (\d+)", source).groups())
    items = speed.gpu_predictions()["notebooks"]["07_new_concepts"]["items"]
    assert items["unet (training)"] >= (ti + db) * batch


def test_predictions_follow_the_peaks_and_the_reference():
    eff = speed.gpu_efficiency()
    assert 0.05 < eff < 0.5  # a fraction of the peak, as measured GPUs reach on SD
    minutes = speed.predicted_minutes()
    for row in minutes.values():
        assert row["T4"] / row["A100"] == pytest.approx(speed.PEAK_TFLOPS["A100"] / speed.PEAK_TFLOPS["T4"])
    ti = speed.predict_training(1000, 1, gpu="T4")
    db = speed.predict_training(500, 1, terms=2, gpu="T4")
    assert db["peak_gb"] > ti["peak_gb"] > speed.gpu_predictions()["weights_gb"]
    assert speed.predict_training(1000, 2)["minutes"] == pytest.approx(2 * ti["minutes"])
    text = speed.prediction_assumptions()
    assert "Predicted, not measured" in text and speed.REFERENCE["source"] in text


@pytest.mark.parametrize("call, message", [
    (lambda: speed.predict_training(0), "steps must be a whole number"),
    (lambda: speed.predict_training(10, batch_size=1.5), "batch_size must be a whole number"),
    (lambda: speed.predict_training(10, terms=0), "terms must be a whole number"),
    (lambda: speed.predict_training(10, gpu="RTX"), "gpu must be one of"),
    (lambda: speed.predicted_minutes("K80"), "gpu must be one of"),
])
def test_bad_input_is_one_clear_error(call, message):
    with pytest.raises(sdlib.SDLibError, match=re.escape(message)):
        call()
