"""The HTML report: one self-contained file whose every figure loads in a real browser without a console
error (headless Chromium, Debian's `chromium`, installed here when missing; skipped if that is impossible)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from corrbench.report.document import build_report
from corrbench.report.render import Table
from test_figures import hand_rows

HARNESS = """<!DOCTYPE html><html><body><iframe id="f" src="report.html" width="1300" height="900"></iframe>
<pre id="out">pending</pre><script>
document.getElementById("f").addEventListener("load", function () {
  var doc = this.contentDocument, imgs = Array.prototype.slice.call(doc.images);
  var broken = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
                   .map(function (i) { return i.alt; });
  var links = Array.prototype.slice.call(doc.querySelectorAll("[src],[href]")).map(function (e) {
    return e.getAttribute("src") || e.getAttribute("href"); }).filter(function (u) {
    return !(u.indexOf("data:") === 0 || u.indexOf("#") === 0); });
  document.getElementById("out").textContent = JSON.stringify({images: imgs.length, broken: broken,
    external: links, sections: doc.querySelectorAll("section").length});
});
</script></body></html>"""


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], env=env, capture_output=True, timeout=900)
        found = shutil.which("chromium")
    if not found:
        pytest.skip("headless Chromium is not installed and could not be installed (apt-get install chromium)")
    return found


def test_html_report_is_self_contained_and_every_figure_loads(tmp_path):
    rows = hand_rows()
    table = Table(title="Errors", columns=["method", "clean"], rows=[["standard", 11.0], ["augmix", 6.0]])
    document = build_report(rows, [table], title="test report").render()
    assert "<script" not in document
    for term in ("ECE (ece)", "mean_corruption_error", "Provenance", "Figures: cifar10-c"):
        assert term in document
    (tmp_path / "report.html").write_text(document, encoding="utf-8")
    (tmp_path / "harness.html").write_text(HARNESS, encoding="utf-8")
    result = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", "--dump-dom",
         (tmp_path / "harness.html").as_uri()], capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="out">([^<]*)</pre>', result.stdout)
    assert found, result.stderr[-2000:]
    state = json.loads(found.group(1))
    assert state["images"] == 5 and state["broken"] == [] and state["external"] == []
    assert state["sections"] >= 4
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line and "report.html" in line]
    assert console == []
