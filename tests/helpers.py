"""Shared test helpers."""

import pytest

from tracker_diag.cli import main


def run_cli(argv, capsys):
    """Call the CLI like a user; (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err
