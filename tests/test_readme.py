"""The README's import examples are real: each one imports cleanly, so the docs cannot drift from the contract."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from contract import REPO_ROOT, Workspace
from events import import_file

README = (REPO_ROOT / "README.md").read_text()

# (kind, heading the example follows, fence language, file suffix)
EXAMPLES = [
    ("events", "**Events**", "json", ".ndjson"),
    ("records", "**Customer records**", "csv", ".csv"),
    ("transactions", "**Transactions**", "csv", ".csv"),
    ("decisions", "**Decisions**", "csv", ".csv"),
]


def example_after(heading: str, lang: str) -> str:
    start = README.index(heading)
    match = re.compile(rf"```{lang}\n(.*?)```", re.S).search(README, start)
    assert match, f"no ```{lang} block after {heading}"
    return match.group(1)


def test_readme_shows_the_two_commands() -> None:
    assert "make run" in README and "make test" in README


@pytest.mark.parametrize(("kind", "heading", "lang", "suffix"), EXAMPLES)
def test_readme_example_imports_cleanly(
    tmp_path: Path, kind: str, heading: str, lang: str, suffix: str
) -> None:
    text = example_after(heading, lang)
    path = tmp_path / f"example{suffix}"
    path.write_text(text)
    report = import_file(Workspace(tmp_path / "ws"), kind, path)
    expected_rows = len([line for line in text.splitlines() if line.strip()]) - (1 if lang == "csv" else 0)
    assert report.rows == expected_rows
    assert report.quarantined == 0, report.reasons
    assert report.accepted == expected_rows
