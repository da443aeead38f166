"""The README a new user reads: its links lead somewhere in the repository (issue 13)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_file_the_readme_names_is_in_the_repository():
    readme = (ROOT / "README.md").read_text()
    linked = re.findall(r"\]\(([^)#]+)\)", readme) + re.findall(r"`((?:\.\./|docs/)[^`]+\.(?:md|txt))`", readme)
    assert {"docs/architecture.md", "docs/api.md", "docs/events.md", "docs/billing.md"} <= set(linked)
    missing = [path for path in linked if not path.startswith("http") and not (ROOT / path).resolve().is_file()]
    assert missing == []
    assert "../shared" not in readme


def test_the_readme_sets_up_with_exactly_two_commands():
    readme = (ROOT / "README.md").read_text()
    setup = readme.split("## Set up", 1)[1].split("##", 1)[0]
    commands = re.findall(r"^make \w+", setup, flags=re.M)
    assert commands == ["make run", "make test"]
