"""The claims the notebooks check are true in the committed notebooks, and every notebook has some.

A notebook states a claim as a printed verdict in a cell that nbval compares (`# NBVAL_CHECK_OUTPUT`):
"every step keeps the picture better, for every seed: True". nbval then guards that the verdict
does not change on re-execution, but a verdict committed as False would be guarded just as well, so
this test reads the committed outputs: every verdict says True (a claim is worded so that True is
what the text says; "max pixel difference, A vs B: N" claims the same picture, N = 0), and every
notebook makes at least three such checks (issue 13)."""
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))
VERDICT = re.compile(r"(?::|->)\s*(True|False)\b")  # "...: True", "... -> False"
SAME_PICTURE = re.compile(r"max pixel difference[^:]*:\s*(\d+)")  # "..., hand loop vs pipeline: 0"


def _checked_outputs(path):
    """The text printed by the cells nbval compares."""
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and "NBVAL_CHECK_OUTPUT" in "".join(cell["source"]):
            for out in cell.get("outputs", []):
                yield "".join(out.get("text", [])) + "".join(out.get("data", {}).get("text/plain", []))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_checked_claim_holds(path):
    lines = [line for text in _checked_outputs(path) for line in text.splitlines()]
    verdicts = [(line, m.group(1)) for line in lines for m in VERDICT.finditer(line)]
    verdicts += [(line, "True" if m.group(1) == "0" else "False") for line in lines
                 for m in SAME_PICTURE.finditer(line)]
    assert len(verdicts) >= 3, f"{path.name}: only {len(verdicts)} checked claims"
    false = [line for line, v in verdicts if v == "False"]
    assert not false, f"{path.name}: claims that do not hold: {false}"


def test_the_verdict_pattern():
    assert VERDICT.findall("every step keeps the picture better, for every seed: True") == ["True"]
    assert VERDICT.findall("largest scale vs no loss: mean blue up by 0.45 -> False") == ["False"]
    assert VERDICT.findall("rises: True | halfway: False") == ["True", "False"]
    assert not VERDICT.findall("Truedetective: Trueish")
    assert SAME_PICTURE.findall("max pixel difference, hand loop vs pipeline: 0") == ["0"]
