"""bench/report.py: a run replaces only its own subsection of the Performance page (by
default docs/performance.md); saved runs are reused."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "report.py"

README = """# hpsearch

## Performance

Intro written by hand.

### trainer

<!-- bench:trainer -->
old trainer table
<!-- /bench:trainer -->

Earlier trainer figures, by hand.

### reads

<!-- bench:reads -->
old reads table
<!-- /bench:reads -->

## Licence

MIT
"""


def _report() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_report", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_replaces_only_its_own_subsection() -> None:
    new = _report().replace_subsection(README, "trainer", "new trainer table")
    assert "new trainer table" in new and "old trainer table" not in new
    assert "old reads table" in new
    assert "Earlier trainer figures, by hand." in new and "Intro written by hand." in new
    assert new.count("<!-- bench:trainer -->") == 1 and new.endswith("MIT\n")


def test_a_missing_subsection_is_added_at_the_end_of_the_section() -> None:
    new = _report().replace_subsection(README, "quality", "quality table")
    performance = new.split("## Performance", 1)[1].split("## Licence", 1)[0]
    assert performance.rstrip().endswith(
        "### quality\n\n<!-- bench:quality -->\nquality table\n<!-- /bench:quality -->"
    )
    assert new.endswith("## Licence\n\nMIT\n")


PAGE = """# Performance

Intro written by hand.

## overhead

<!-- bench:overhead -->
```text
# overhead: vm, 2 cores
sqlite  9.1
```
<!-- /bench:overhead -->
"""


def test_a_page_titled_performance_gets_its_subsections_one_level_down() -> None:
    """On a page whose title is "# Performance" the subsections are "##", and a "#" line
    inside a benchmark's output is not a heading that ends the section."""
    new = _report().replace_subsection(PAGE, "quality", "quality table")
    assert new.endswith(
        "<!-- /bench:overhead -->\n\n## quality\n\n"
        "<!-- bench:quality -->\nquality table\n<!-- /bench:quality -->\n"
    )
    assert "# overhead: vm, 2 cores\nsqlite  9.1\n" in new


def test_the_performance_page_has_a_subsection_for_every_script() -> None:
    report = _report()
    page = report.TARGET.read_text()
    assert report.TARGET == ROOT / "docs" / "performance.md"
    for name in report.SUITE:
        assert page.count(f"<!-- bench:{name} -->") == 1, name
        assert page.count(f"<!-- /bench:{name} -->") == 1, name


def test_no_performance_section_is_an_error() -> None:
    with pytest.raises(ValueError, match="Performance"):
        _report().replace_subsection("# hpsearch\n", "trainer", "table")


def test_saved_runs_rewrite_the_target(tmp_path: Path) -> None:
    report = _report()
    run = report.Run(
        name="reads",
        command="python bench/reads.py",
        date="2026-11-23 16:00 UTC",
        commit="abc1234",
        cores=2,
        cpu="Some CPU",
        load="1.0 -> 2.0",
        versions="Python 3.11.2, torch 2.13.0, optuna 5.0.0",
        seconds=12.0,
        stdout="request  p50 ms\nleaderboard  4\n",
    )
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "reads.json").write_text(json.dumps(asdict(run)))
    target = tmp_path / "README.md"
    target.write_text(README)
    cmd = [sys.executable, str(SCRIPT), "--only", "reads", "--saved", str(saved)]
    done = subprocess.run([*cmd, "--target", str(target)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    text = target.read_text()
    assert "```text\nrequest  p50 ms\nleaderboard  4\n```" in text
    assert "`python bench/reads.py` on 2026-11-23 16:00 UTC, commit abc1234, 2 cores" in text
    assert "old reads table" not in text and "old trainer table" in text


def test_unknown_names_are_refused() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--only", "trainer,nope"], capture_output=True, text=True
    )
    assert done.returncode == 2 and "nope" in done.stderr
