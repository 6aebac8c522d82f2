"""Every number the notebooks' prose quotes with a unit is one that a cell printed (issue 26).

A sentence such as "the round trip keeps 39.6 dB" or "pink in 25 % of the samples" is bound to the
value that a cell measured: the number must appear among the notebook's printed outputs, to the
precision it is quoted with (39.6 matches a printed 39.62; 25 % matches a printed 25% or 0.25).
When re-execution moves a value, or an edit quotes a number nothing measured, this fails and names
the sentence. Quoted with a unit means %, dB, s (seconds), x (times, "1.5x") or steps. Code spans,
code blocks and formulas are not prose and are skipped. The few quoted numbers that are definitions,
not measurements, are in ALLOWED with the reason.
"""
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))
NUMBER = r"\d+(?:\.\d+)?"
# "39.6 dB", "25 %", "0.8 s", "1.5x", "25 steps", and ranges "30-70 s", "4 to 6 dB"
QUOTED = re.compile(rf"(?<![\w.])({NUMBER})(?:\s*(?:-|–|to)\s*({NUMBER}))?"
                    rf"(\s*(?:%|dB\b|s\b(?!')|steps?\b)|(?:x|×)(?![\w\d]|\s*\d))")
PRINTED = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
# Quoted numbers that are definitions or settings, not measurements: (notebook prefix or "*", text).
ALLOWED = {
    ("08", "2.3 x"): "DeepCache's own speed-up for SD v1.5 at N = 5, cited from its paper (Ma et al. 2024)",
}


def prose(cell_source):
    """The markdown without code blocks, code spans, formulas and link targets."""
    text = re.sub(r"```.*?```", " ", cell_source, flags=re.S)
    text = re.sub(r"`[^`]*`", " ", text)
    text = re.sub(r"\$\$.*?\$\$|\$[^$]*\$", " ", text, flags=re.S)
    return re.sub(r"\]\([^)]*\)", "]", text)


def quoted_numbers(markdown):
    """[(number text, unit, the sentence around it)] for each number quoted with a unit."""
    out = []
    for m in QUOTED.finditer(prose(markdown)):
        unit = m.group(3).strip()
        unit = {"×": "x", "step": "steps"}.get(unit, unit)
        start = max(0, m.start() - 60)
        context = " ".join(m.string[start:m.end() + 20].split())
        out += [(n, unit, context) for n in (m.group(1), m.group(2)) if n]
    return out


def printed_values(nb):
    """Every number in the notebook's printed text (streams, text results, table HTML)."""
    values = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []) if cell["cell_type"] == "code" else []:
            data = out.get("data", {})
            text = "".join(out.get("text", [])) + "".join(data.get("text/plain", [])) + "".join(data.get("text/html", []))
            values += [float(v) for v in PRINTED.findall(text.replace(",", ""))]
    return values


def matches(number, unit, values):
    """Is `number` (as quoted, with its unit) one of `values` to the precision it is quoted with?"""
    decimals = len(number.split(".")[1]) if "." in number else 0
    q, half = float(number), 0.5 * 10 ** -decimals + 1e-9
    candidates = values + ([v * 100 for v in values] if unit == "%" else [])
    return any(abs(abs(v) - q) <= half for v in candidates)


def unbound(nb, prefix):
    values = printed_values(nb)
    found = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "markdown":
            continue
        for number, unit, context in quoted_numbers("".join(cell["source"])):
            if (prefix, f"{number} {unit}") in ALLOWED or ("*", f"{number} {unit}") in ALLOWED:
                continue
            if not matches(number, unit, values):
                found.append(f"cell {i}: {number} {unit} in '...{context}...'")
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_quoted_number_was_printed(path):
    found = unbound(json.loads(path.read_text()), path.name[:2])
    assert not found, f"{path.name}: numbers in the prose that no cell printed:\n" + "\n".join(found)


def test_allowed_numbers_are_still_quoted():
    """An allow-list entry that no notebook quotes any more is dead: remove it."""
    quoted = set()
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "markdown":
                quoted |= {(p, f"{n} {u}") for n, u, _ in quoted_numbers("".join(cell["source"]))
                           for p in (path.name[:2], "*")}
    assert set(ALLOWED) <= quoted, set(ALLOWED) - quoted


def _nb(markdown, printed):
    return {"cells": [{"cell_type": "markdown", "source": markdown},
                      {"cell_type": "code", "source": "", "outputs": [{"output_type": "stream", "text": printed}]}]}


def test_a_wrong_number_fails_and_a_printed_one_passes():
    printed = "round trip: 39.62 dB | pink in 0.25 of samples | 12 of 40 | speed-up 1.33x, took 0.82 s\n"
    assert not unbound(_nb("The round trip keeps 39.6 dB; pink in 25 %; 1.3x faster in 0.8 s.", printed), "99")
    wrong = unbound(_nb("The round trip keeps 41.2 dB and pink appears in 30 % of them.", printed), "99")
    assert [w.split(" in ")[0] for w in wrong] == ["cell 0: 41.2 dB", "cell 0: 30 %"]


def test_what_counts_as_a_quoted_number():
    units = [(n, u) for n, u, _ in quoted_numbers(
        "a 30-70 s run, 4 to 6 dB, 1.5x and 2× faster, 25 steps, one step, 48x compression; "
        "not: a 64 x 64 grid, `num_steps=25`, $0.5 x$, [link](a_12s.png), 8x8 latents, version 2.1")]
    assert units == [("30", "s"), ("70", "s"), ("4", "dB"), ("6", "dB"), ("1.5", "x"), ("2", "x"),
                     ("25", "steps"), ("48", "x")]
