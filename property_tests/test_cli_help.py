"""Every command's ``--help`` is plain text: sentences and option lists, no
reStructuredText markup (issue 10), and it exits 0."""
from __future__ import annotations

import re

import pytest

from numerics.commands.cli import COMMANDS, main

MARKUP = re.compile(r"``|:(func|class|data|mod|meth|attr):`")


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_is_plain_text(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"] if command else ["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: icrl-verify")
    found = [line for line in out.splitlines() if MARKUP.search(line)]
    assert not found, f"markup in --help: {found[:3]}"
