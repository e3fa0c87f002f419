"""The suite runs against the Prosody version it was asked to test.

`make test-e2e-0.12` and `make test-e2e-13` set EXPECT_PROSODY_VERSION, so a
launcher that silently starts the other version fails here instead of
passing every other test on the wrong server.
"""

import os
import re

import pytest


def test_server_reports_expected_version(prosody):
    expected = os.environ.get("EXPECT_PROSODY_VERSION")
    if not expected:
        pytest.skip("EXPECT_PROSODY_VERSION is not set; run through `make test-e2e-0.12` or `make test-e2e-13`")

    # Prosody logs its version once at startup.
    match = re.search(r"Prosody version (\S+)", prosody.log_text())
    assert match, "no version line in the Prosody log"

    assert match.group(1).startswith(expected), f"server is {match.group(1)}, expected {expected}*"
