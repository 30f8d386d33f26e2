"""Documented or it fails: every CLI command is in the README and has help ending in an example."""

from __future__ import annotations

import argparse
from pathlib import Path

from bot.cli import build_parser

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _commands(parser: argparse.ArgumentParser, prefix: str = "cartif-bot") -> list[tuple[str, argparse.ArgumentParser]]:
    found: list[tuple[str, argparse.ArgumentParser]] = []
    for action in parser._actions:  # argparse keeps subparsers only here
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                nested = _commands(sub, f"{prefix} {name}")
                found += nested or [(f"{prefix} {name}", sub)]
    return found


def test_every_command_is_in_the_readme() -> None:
    commands = _commands(build_parser())
    assert commands, "the CLI has no commands?"
    missing = [name for name, _ in commands if f"`{name}" not in README]
    assert not missing, f"add these to README.md's Commands table: {missing}"


def test_the_quick_start_is_exactly_two_commands() -> None:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    lines = [line for line in block.strip().splitlines() if line.strip()]
    assert [line.split()[0:2] for line in lines] == [["./run", "demo"], ["./run", "test"]]
