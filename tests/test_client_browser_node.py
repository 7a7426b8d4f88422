"""The browser SDK's unit tests (clients/js/test/*.test.js, node's own test runner) run here,
so scripts/test and CI run them; and its TypeScript declarations name what it exports.

Without node (20 or later) these skip, except with ``JWTWARDEN_REQUIRE_SERVICES=1`` (CI), where
they fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

SDK = Path(__file__).resolve().parents[1] / "clients" / "js"


def node() -> str:
    path = shutil.which("node")
    missing = None
    if path is None:
        missing = "node is not installed (apt-get install nodejs)"
    else:
        version = subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout
        if int(version.strip().lstrip("v").split(".")[0]) < 20:
            missing = f"node {version.strip()} is too old (20 or later)"
    if missing is None:
        assert path is not None
        return path
    if os.environ.get("JWTWARDEN_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{missing}, and JWTWARDEN_REQUIRE_SERVICES=1 forbids skipping")
    pytest.skip(missing)


def test_the_sdk_unit_tests_pass_under_node() -> None:
    files = sorted(str(p.relative_to(SDK)) for p in (SDK / "test").glob("*.test.js"))
    assert files, "no SDK unit tests found"
    run = subprocess.run([node(), "--test", "--test-timeout=20000", *files], cwd=SDK,
                         capture_output=True, text=True, timeout=300, check=False)
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-6000:]
    passed = re.search(r"^# pass (\d+)$", report, re.MULTILINE)
    assert passed and int(passed[1]) >= 20, report[-2000:]  # an empty run is no pass
    assert re.search(r"^# fail 0$", report, re.MULTILINE), report[-2000:]


def test_the_type_declarations_name_every_export_and_method() -> None:
    script = ("import('./src/index.js').then(m => console.log(JSON.stringify({exports: Object.keys(m), "
              "members: Object.getOwnPropertyNames(m.JwtwardenClient.prototype)})))")
    found = json.loads(subprocess.run([node(), "--input-type=module", "-e", script], cwd=SDK,
                                      capture_output=True, text=True, check=True).stdout)
    declared = (SDK / "src" / "index.d.ts").read_text(encoding="utf-8")
    for name in found["exports"]:
        assert re.search(rf"^export (class|function|const) {name}\b", declared, re.MULTILINE), name
    client = declared.split("export class JwtwardenClient", 1)[1].split("\n}\n", 1)[0]
    for name in found["members"]:
        if name != "constructor":
            assert re.search(rf"^  (readonly )?{name}\b", client, re.MULTILINE), name
