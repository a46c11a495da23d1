"""Open the rendered index.html in headless Chromium: every image loads, no console errors,
and a screenshot is taken. A probe script is prepended to a copy of the page; it records
errors (script errors, failed resource loads, console.error) and, once the page has loaded,
each image's naturalWidth into the DOM, which ``--dump-dom`` then prints."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from asyncbench.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None and not os.environ.get("CI"),
        reason="chromium is not installed (apt-get install -y chromium); CI installs it",
    ),
]

PROBE = """<script>
window.__errors = [];
window.addEventListener('error', function (event) {
  var target = event.target && event.target.tagName ? event.target.tagName : 'script';
  window.__errors.push(target + ': ' + (event.message || 'failed to load'));
}, true);
var originalError = console.error;
console.error = function () {
  window.__errors.push('console: ' + Array.prototype.join.call(arguments, ' '));
  originalError.apply(console, arguments);
};
window.addEventListener('load', function () {
  var images = Array.prototype.map.call(document.images, function (image) {
    return image.complete ? image.naturalWidth : 0;
  });
  var probe = document.createElement('pre');
  probe.id = 'probe';
  probe.textContent = JSON.stringify({images: images, errors: window.__errors});
  document.body.appendChild(probe);
});
</script>"""


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None, "CI must have chromium installed"
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=10000", *args,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_index_html_renders_in_headless_chromium(
    run_folders: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "report"
    folders = [str(run_folders[name]) for name in ("baseline", "outage", "capacity")]
    assert main(["report", *folders, "--out", str(out)]) == 0
    page = (out / "index.html").read_text(encoding="utf-8")
    expected_images = page.count("<img ")
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")

    dumped = _chromium("--dump-dom", probed.as_uri(), profile=tmp_path / "profile-dom")
    match = re.search(r'<pre id="probe">(.*?)</pre>', dumped.stdout, re.S)
    assert match, f"the probe did not run; chromium said: {dumped.stderr[-2000:]}"
    result = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert result["errors"] == []
    assert len(result["images"]) == expected_images >= 20
    assert all(width > 0 for width in result["images"])

    screenshot = tmp_path / "report.png"
    shot = _chromium(
        f"--screenshot={screenshot}",
        "--window-size=1200,2400",
        (out / "index.html").as_uri(),
        profile=tmp_path / "profile-shot",
    )
    assert screenshot.is_file(), shot.stderr[-2000:]
    assert screenshot.read_bytes().startswith(b"\x89PNG")
    assert screenshot.stat().st_size > 10_000  # a rendered page, not a blank frame
