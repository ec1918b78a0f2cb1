"""Every `ecert-ca` command the README names answers --help at the path the README gives."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from ecert.cli import ca

PATHS = [
    ("perspective", "serve"),
    ("application", "add"),
    ("application", "list"),
    ("dcv", "start"),
    ("dcv", "check"),
    ("audit", "verify"),
    ("audit", "show"),
    ("cert", "issue"),
    ("cert", "show"),
    ("cert", "revoke"),
    ("vetting", "add"),
    ("crl", "publish"),
    ("ocsp", "serve"),
    ("jobs", "run-once"),
    ("ct", "logs"),
    ("notices", "list"),
    ("incident", "open"),
    ("acme", "eab", "new"),
    ("doctor",),
    ("serve",),
    ("init",),
    ("ca", "list"),
]


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
def test_each_command_answers_help_at_its_path(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(ca._command_line(), [*path, "--help"], prog_name="ecert-ca")
    assert result.exit_code == 0, result.output
    assert f"ecert-ca {' '.join(path)}" in " ".join(result.output.split())
