"""Render the renderer conformance suite's Velocity cases through Apache Velocity 1.7 itself.

    apt-get install velocity        # Debian's Velocity 1.7 jar (plus commons-collections/lang)
    .venv/bin/python scripts/regenerate_velocity_cases.py

Two sets of cases, both rendered by Java Velocity and stored with their outputs (CI reads the
stored outputs and needs no Java Velocity):

- ``tests/local/data/velocity_cases.json``: core VTL (each case: ``name``, ``template``; its
  variables are built by ``#set`` lines inside the template), rendered with
  ``scripts/velocity/RenderWithVelocity.java``; the output or the exception Velocity raised is
  written back as the case's ``velocity`` field.
- ``tests/local/data/deployed_template_cases.json``: the stack's own request and response
  templates (``stack/templates``) with hostile bodies, rendered with
  ``scripts/velocity/RenderDeployedTemplates.java`` ($util.escapeJavaScript is commons-lang 2's,
  as API Gateway's is).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "tests" / "local" / "data" / "velocity_cases.json"
DEPLOYED_CASES = ROOT / "tests" / "local" / "data" / "deployed_template_cases.json"
RUNNER = ROOT / "scripts" / "velocity" / "RenderWithVelocity.java"
DEPLOYED_RUNNER = ROOT / "scripts" / "velocity" / "RenderDeployedTemplates.java"
DEPLOYED_TEMPLATES = ("put_request.vtl", "get_request.vtl", "put_response.vtl")
HOSTILE = (
    '{"work_ms": 0}',
    '{"payload": "it\'s \\"quoted\\" and C:\\\\path\\\\"}',
    "it's not JSON at all: ' \\' \\\\' \"",
    '{"payload": "Grüße 東京 😀 \u2028 \u00e9 \u0001"}',
    "ünïcödé raw: 😀 \u2028\u2029 \x7f \x01\x1f",
    '{"payload": "\\", \\"status\\": {\\"S\\": \\"SUCCEEDED\\"}, \\"x\\": \\""}',
    "$context.requestId #set($x = 1) ${x} \\$y ## #if(true)x#end $!{z}",
    "</script><b>&amp;</b> // \\/ \t\r\n trailing backslash \\",
    '{\n  "work_ms": 0,\n\t"payload": "  lines  "\n}\n',
)
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
    _regenerate_deployed(jars, source)
    print(CASES)
    return 0


def _regenerate_deployed(jars: list[Path], source: str) -> None:
    templates = ROOT / "stack" / "templates"
    inputs = [
        {"template": name, "body": body, "run_id": body[:40], "id": body[:40]}
        for name in DEPLOYED_TEMPLATES
        for body in HOSTILE
    ]
    stdin = SEPARATOR.join(
        "\x00\t".join(
            [(templates / case["template"]).read_text(encoding="utf-8"), *list(case.values())[1:]]
        )
        for case in inputs
    )
    completed = subprocess.run(
        ["java", "-cp", ":".join(map(str, jars)), str(DEPLOYED_RUNNER)],
        input=stdin.encode("utf-8"),
        capture_output=True,
        check=True,
    )
    outputs = completed.stdout.decode("utf-8").split(SEPARATOR)
    for case, output in zip(inputs, outputs, strict=True):
        case["velocity"] = output
    document = {
        "source": f"{source}, with commons-lang 2 StringEscapeUtils as $util.escapeJavaScript; "
        "regenerate with: .venv/bin/python scripts/regenerate_velocity_cases.py",
        "context": {
            "requestId": "c0ffee00-0000-4000-8000-000000000001",
            "requestTimeEpoch": 1764979200123,
            "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
            "stage": "storage-first",
            "stageVariables": {"tableName": "asyncbench-storage-first-requests", "scheme": "https"},
        },
        "cases": inputs,
    }
    DEPLOYED_CASES.write_text(
        json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )


if __name__ == "__main__":
    sys.exit(main())
