"""Every command's --help as users see it (80 columns), and the file the suite compares it with.

Run ``python tests/cli_help.py`` after an intended change of an option or a help text to rewrite
tests/data/cli_help.txt; review its diff as users would read it.
"""

from __future__ import annotations

from pathlib import Path

import click
from click.testing import CliRunner

from latentspectra.cli import cli

EXPECTED = Path(__file__).parent / "data" / "cli_help.txt"


def command_paths(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and group under ``group``, depth first, by name."""
    context = click.Context(group)
    found = []
    for name in sorted(group.list_commands(context)):
        command = group.get_command(context, name)
        found.append((*path, name))
        if isinstance(command, click.Group):
            found += command_paths(command, (*path, name))
    return found


def all_help() -> str:
    """``latentspectra --help`` and ``latentspectra COMMAND --help`` for every command, each after a "$" line."""
    runner = CliRunner()
    texts = []
    for path in [(), *command_paths(cli)]:
        shown = runner.invoke(cli, [*path, "--help"], prog_name="latentspectra", terminal_width=80)
        assert shown.exit_code == 0, shown.output
        texts.append(f"$ latentspectra {' '.join((*path, '--help'))}\n{shown.output}")
    return "\n".join(texts)


if __name__ == "__main__":
    EXPECTED.write_text(all_help())
    print(f"wrote {EXPECTED}")
