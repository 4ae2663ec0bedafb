"""The docs site builds offline with every link resolved (``make docs``), and the README's links
stay inside the repository."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MKDOCS = Path(sys.executable).parent / "mkdocs"
BUILD_TIMEOUT_S = 120
# [text](target): a Markdown link; the target up to an optional #anchor.
LINK = re.compile(r"\]\(([^)#\s]*)(#[^)\s]*)?\)")


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(MKDOCS), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "site" / "index.html").is_file()


def test_the_readme_links_stay_in_the_repository() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = [target for target, _ in LINK.findall(readme) if target]
    assert "docs/index.md" in targets
    outside = [target for target in targets if "://" in target or target.startswith(("/", ".."))]
    assert outside == []
    missing = [target for target in targets if not (ROOT / target).exists()]
    assert missing == []


def test_the_readme_anchors_exist() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in readme.splitlines()
        if line.startswith("## ")
    }
    anchors = [anchor[1:] for target, anchor in LINK.findall(readme) if not target and anchor]
    assert anchors
    assert [anchor for anchor in anchors if anchor not in headings] == []
