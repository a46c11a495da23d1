"""matplotlib is imported at the first figure, not before: the analysis (where a report's peak
resident memory is reached) does not carry it. Each check runs in a fresh interpreter, since
this test session has imported matplotlib long ago."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

_IMPORTS = "import analysis.cli, analysis.report, analysis.analyze"


def _python(source: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", source, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=Path(__file__).parents[2],
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_importing_the_report_modules_does_not_import_matplotlib() -> None:
    out = _python(f"import sys\n{_IMPORTS}\nprint('matplotlib' in sys.modules)")
    assert out.strip() == "False"


def test_report_help_does_not_import_matplotlib() -> None:
    source = (
        "import contextlib, io, sys\n"
        "from asyncbench.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as help_text:\n"
        "    try:\n"
        "        main(['report', '--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('RUN_DIR' in help_text.getvalue(), 'matplotlib' in sys.modules)"
    )
    assert _python(source).split() == ["True", "False"]


def test_matplotlib_arrives_with_the_first_figure_after_the_analysis(
    run_folders: dict[str, Path], tmp_path: Path
) -> None:
    """Every progress step up to the first figure ("rendering ...") runs without matplotlib;
    the written report has its figures, so matplotlib was imported by then."""
    source = (
        "import sys\n"
        "from pathlib import Path\n"
        "from analysis.cli import make_report\n"
        "def say(message):\n"
        "    print(message.split()[0], 'matplotlib' in sys.modules)\n"
        "make_report([Path(sys.argv[1])], out=Path(sys.argv[2]), progress=say)\n"
        "print('done', 'matplotlib' in sys.modules)"
    )
    lines = _python(source, str(run_folders["outage"]), str(tmp_path)).splitlines()
    steps = dict(line.split() for line in lines)
    assert steps["loading"] == steps["analysing"] == steps["rendering"] == "False"
    assert steps["done"] == "True"
    assert len(list((tmp_path / "figures").glob("*.png"))) >= 6
