"""Render the renderer conformance suite's Velocity cases through Apache Velocity 1.7 itself.

    apt-get install velocity        # Debian's Velocity 1.7 jar (plus commons-collections/lang)
    .venv/bin/python scripts/regenerate_velocity_cases.py

Reads ``tests/local/data/velocity_cases.json`` (each case: ``name``, ``template``; a case's
variables are built by ``#set`` lines inside its template, so no context needs passing),
renders every template with ``scripts/velocity/RenderWithVelocity.java`` and writes each
output (or the exception Velocity raised) back as the case's ``velocity`` field. CI reads the
stored outputs and needs no Java Velocity.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "tests" / "local" / "data" / "velocity_cases.json"
RUNNER = ROOT / "scripts" / "velocity" / "RenderWithVelocity.java"
JARS = ("velocity.jar", "commons-collections3.jar", "commons-lang.jar")
SEPARATOR = "\0\n"


def main() -> int:
    jars = [Path("/usr/share/java") / jar for jar in JARS]
    missing = [str(jar) for jar in jars if not jar.exists()]
    if missing:
        print(f"missing {', '.join(missing)}: apt-get install velocity", file=sys.stderr)
        return 1
    document = json.loads(CASES.read_text(encoding="utf-8"))
    cases = document["cases"]
    stdin = SEPARATOR.join(case["template"] for case in cases)
    completed = subprocess.run(
        ["java", "-cp", ":".join(map(str, jars)), str(RUNNER)],
        input=stdin.encode("utf-8"),
        capture_output=True,
        check=True,
    )
    outputs = completed.stdout.decode("utf-8").split(SEPARATOR)
    if len(outputs) != len(cases):
        print(f"expected {len(cases)} outputs, got {len(outputs)}", file=sys.stderr)
        return 1
    version = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "velocity"], capture_output=True, text=True
    ).stdout
    source = f"Apache Velocity 1.7 (Debian package velocity {version or '?'}), default settings"
    for case, output in zip(cases, outputs, strict=True):
        kind, _, text = output.partition("\n")
        case["velocity"] = {"output": text} if kind == "OK" else {"error": text.split(":")[0]}
        case["source"] = source
    document["source"] = (
        f"{source}; regenerate with: .venv/bin/python scripts/regenerate_velocity_cases.py"
    )
    CASES.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(CASES)
    return 0


if __name__ == "__main__":
    sys.exit(main())
