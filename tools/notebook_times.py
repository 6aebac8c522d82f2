"""Write docs/notebook_times.json from a test run's JUnit report: the seconds each notebook's cells
took under nbval (one thread per worker, as `./course.sh test` runs them).

    ./course.sh test --junitxml=/tmp/run.xml
    .venv/bin/python tools/notebook_times.py /tmp/run.xml

The test run schedules the longest notebooks first from this file (conftest.py), and the teacher's
page quotes it (tools/teacher_page.py).
"""
import argparse
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMES = ROOT / "docs" / "notebook_times.json"


def notebook_seconds(junit_xml):
    """{notebook stem: seconds} summed over its nbval cells in a JUnit report."""
    seconds = {}
    for case in ET.parse(junit_xml).getroot().iter("testcase"):
        m = re.search(r"notebooks[./](\d\d_\w+)(?:\.ipynb|$)", case.get("classname", "") + " " + case.get("file", ""))
        if m:
            seconds[m.group(1)] = seconds.get(m.group(1), 0.0) + float(case.get("time", 0))
    return seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("junit_xml")
    times = notebook_seconds(ap.parse_args().junit_xml)
    if not times:
        raise SystemExit("no notebook cells in that report: was it a run over notebooks/?")
    TIMES.write_text(json.dumps({k: round(v) for k, v in sorted(times.items())}, indent=1) + "\n")
    print(json.dumps({k: round(v) for k, v in sorted(times.items())}))


if __name__ == "__main__":
    main()
