"""The README's quick start: two commands, and the first one (the demo) really works."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def quick_start_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block, "the quick start has a sh code block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_quick_start_is_two_commands_demo_then_tests() -> None:
    """The quick start is exactly two commands: the demo, then the whole test suite."""
    demo, tests = quick_start_commands()
    assert demo.rstrip().endswith("spotsync demo")
    assert tests.rstrip().endswith("-m pytest")


@pytest.mark.slow
def test_the_demo_command_syncs_every_contract(tmp_path: Path) -> None:
    """`spotsync demo`, as the quick start runs it, ends with every contract synced."""
    demo = quick_start_commands()[0].split("&&")[-1]
    program, *arguments = shlex.split(demo)
    assert Path(program).name == "spotsync"
    spotsync = Path(sys.executable).parent / "spotsync"
    result = subprocess.run(
        [str(spotsync), *arguments],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("│ EXECUTED │ synced │") == 5
    assert "hubspot-deal-10024" in result.stdout
    assert "source system notified of 5 synced contracts" in result.stdout
    pdfs = sorted((tmp_path / "spotsync-demo" / "documents").glob("*.pdf"))
    assert len(pdfs) == 5
    assert all(pdf.read_bytes().startswith(b"%PDF-") for pdf in pdfs)
