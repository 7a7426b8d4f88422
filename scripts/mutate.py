"""scripts/mutate: mutmut over the security-critical modules, one work directory each.

Run through ``scripts/mutate`` (which installs the ``mutate`` extra and runs this under
``nice``). For every module: ``.mutate/NAME/`` gets links to ``src/`` and ``tests/`` and a
``pyproject.toml`` that is the project's plus a ``[tool.mutmut]`` table naming the files to
mutate and the tests to run; mutmut then mutates a copy (``.mutate/NAME/mutants/``), runs
the tests once to learn which test reaches which function, and runs each mutant against
those tests only. The service processes some tests start (tests/servicekit.py) import the
mutated copy too: ``PYTHONPATH`` points at it and the mutant's name is inherited through the
environment, so a defence that lives in the HTTP layer is tested as it is deployed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutate"
MUTMUT = ROOT / ".venv" / "bin" / "mutmut"


@dataclass(frozen=True)
class Module:
    files: tuple[str, ...]
    tests: tuple[str, ...]
    note: str = ""


# Test subsets: the tests that exercise the module directly and run in seconds (the
# subprocess-heavy end-to-end suites are left to scripts/test). Order: the modules other
# work may still change (sessions, db) come last.
MODULES: dict[str, Module] = {
    "verify": Module(
        ("src/jwtwarden/verify.py",),
        ("tests/test_verify.py", "tests/test_attacks.py", "tests/test_vectors_rfc.py",
         "tests/test_wycheproof.py", "tests/test_issue.py")),
    "jose": Module(
        ("src/jwtwarden/jose/*",),
        ("tests/test_wire_format.py", "tests/test_verify.py", "tests/test_attacks.py",
         "tests/test_vectors_rfc.py", "tests/test_wycheproof.py", "tests/test_keys.py",
         "tests/test_issue.py")),
    "keys": Module(
        ("src/jwtwarden/keys.py",),
        ("tests/test_keys.py", "tests/test_verify.py", "tests/test_attacks.py",
         "tests/test_vectors_rfc.py", "tests/test_issue.py")),
    "revocation": Module(
        ("src/jwtwarden/revocation.py", "src/jwtwarden/service/sessions/denylist.py"),
        ("tests/test_revocation.py", "tests/test_revocation_bounded.py",
         "tests/test_revocation_rfc7009.py", "tests/test_redis_denylist.py",
         "tests/test_resource_core.py", "tests/test_revocation_propagation.py",
         "tests/test_revocation_followers.py", "tests/test_feed_client.py")),
    "cookies": Module(
        ("src/jwtwarden/service/cookies.py",),
        ("tests/test_service_api.py", "tests/test_service_defences.py",
         "tests/test_login_limits.py")),
    "ratelimit": Module(
        ("src/jwtwarden/service/ratelimit.py",),
        ("tests/test_login_limits.py",)),
    "resource": Module(
        ("src/jwtwarden/resource/server.py",),
        ("tests/test_resource_core.py", "tests/test_hardening_resource.py",
         "tests/test_resource_asgi.py")),
    "sessions": Module(
        ("src/jwtwarden/service/sessions/service.py",),
        ("tests/test_sessions.py", "tests/test_rotation_failures.py",
         "tests/test_secrets_integrity.py", "tests/test_secrets_at_rest.py",
         "tests/test_revocation_rfc7009.py"),
        "being optimised: run last"),
    "db": Module(
        ("src/jwtwarden/service/storage/db.py",),
        ("tests/test_sessions.py", "tests/test_rotation_failures.py"),
        "being optimised: run last"),
}


def _toml_list(items: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def prepare(name: str, module: Module) -> Path:
    work = WORK / name
    work.mkdir(parents=True, exist_ok=True)
    links = {"src": ROOT / "src", "tests": ROOT / "tests"}
    shared = ROOT.parent / "shared"
    if shared.is_dir():  # tests/test_wycheproof.py looks for ../shared/vectors
        links["shared"] = shared
    for link, target in links.items():
        path = work / link
        if not path.is_symlink():
            path.symlink_to(target, target_is_directory=True)
    table = (
        "\n[tool.mutmut]\n"
        'source_paths = ["src"]\n'
        f"only_mutate = {_toml_list(module.files)}\n"
        f"pytest_add_cli_args_test_selection = {_toml_list(module.tests)}\n"
        "use_git_change_detection = false\n"
    )
    text = (ROOT / "pyproject.toml").read_text() + table
    # mutmut puts mutants/src on sys.path only if it exists when mutmut starts, and it takes
    # the original src/ off: on a first run the tests would import no jwtwarden at all
    (work / "mutants" / "src").mkdir(parents=True, exist_ok=True)
    config = work / "pyproject.toml"
    if not config.exists() or config.read_text() != text:
        config.write_text(text)
    return work


def results(work: Path) -> dict[str, str]:
    """mutant name -> status, from mutmut's own record."""
    out = subprocess.run([str(MUTMUT), "results", "--all", "true"], cwd=work,
                         capture_output=True, text=True, check=False)
    statuses: dict[str, str] = {}
    for line in out.stdout.splitlines():
        key, sep, status = line.strip().rpartition(": ")
        if sep and key:
            statuses[key] = status
    return statuses


_MESSAGE_CALL = re.compile(r"^\s*(raise\s+[\w.]+\(|(log|events|logger|warnings)\.\w+\()")


def diff_of(work: Path, mutant: str) -> tuple[str, str]:
    """(original line, mutated line) of a mutant, as ``mutmut show`` prints them."""
    out = subprocess.run([str(MUTMUT), "show", mutant], cwd=work, capture_output=True,
                         text=True, check=False).stdout.splitlines()
    old = " / ".join(line[1:].strip() for line in out if line.startswith("-") and not line.startswith("---"))
    new = " / ".join(line[1:].strip() for line in out if line.startswith("+") and not line.startswith("+++"))
    return old, new


def equivalent_by_rule(old: str, new: str) -> str | None:
    """Why a survivor needs no test, when a mechanical rule says so; else None.

    - ``message``: only what an error or a log line says changes, not what is decided (the
      same exception class is raised; tests assert classes and codes, never messages);
    - ``codec``: a codec name in other letters (``"ascii"``/``"ASCII"``: the same codec);
    - ``byteorder``: ``"big"`` dropped from ``int.to_bytes``/``from_bytes``, the default
      since Python 3.11 (jwtwarden requires 3.11).
    """
    if " / " not in old and _MESSAGE_CALL.match(old) is not None:
        if old.lstrip().startswith("raise"):
            if new.split("(", 1)[0] == old.split("(", 1)[0] and " if " not in old:
                return "message"
        elif new.split("(", 1)[0] == old.split("(", 1)[0]:
            return "message"
    canonical = new
    for upper, lower in (("ASCII", "ascii"), ("UTF-8", "utf-8")):
        canonical = canonical.replace(f'"{upper}"', f'"{lower}"').replace(f"'{upper}'", f"'{lower}'")
    if canonical == old:
        return "codec"
    if re.sub(r', "big"\)', ")", old, count=1) == new or re.sub(r', "big"\)', ", )", old, count=1) == new:
        return "byteorder"
    return None


def report(name: str, work: Path, seconds: float | None) -> None:
    statuses = results(work)
    counts: dict[str, int] = {}
    for status in statuses.values():
        counts[status] = counts.get(status, 0) + 1
    open_ones: list[tuple[str, str, str, str]] = []
    by_rule: dict[str, int] = {}
    for key, status in sorted(statuses.items()):
        if status in ("killed", "caught by type check", "not checked"):
            continue  # not checked: left out of a run limited to some mutants
        old, new = diff_of(work, key)
        rule = equivalent_by_rule(old, new) if status == "survived" else None
        if rule is not None:
            by_rule[rule] = by_rule.get(rule, 0) + 1
            continue
        open_ones.append((status, key, old, new))
    took = "" if seconds is None else f" in {seconds / 60:.1f} min"
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    rules = ", ".join(f"{n} {r}" for r, n in sorted(by_rule.items())) or "none"
    print(f"== {name}: {len(statuses)} mutants{took}: {summary}; survivors equivalent by rule: "
          f"{rules}; {len(open_ones)} listed", flush=True)
    for status, key, old, new in open_ones:
        print(f"   {status:9} {key}\n             - {old}\n             + {new}", flush=True)


def run(name: str, jobs: int, *, fresh: bool = False, survivors: bool = False,
        globs: list[str] | None = None) -> int:
    module = MODULES[name]
    if fresh:
        shutil.rmtree(WORK / name / "mutants", ignore_errors=True)
    work = prepare(name, module)
    only: list[str] = list(globs or [])
    if survivors:
        only = sorted(k for k, v in results(work).items() if v not in ("killed", "caught by type check"))
        if not only:
            print(f"== {name}: no survivors to check again", flush=True)
            return 0
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(work / "mutants" / "src")] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.pop("JWTWARDEN_REQUIRE_SERVICES", None)  # a missing service skips, as in a developer's run
    what = (f"{len(only)} survivors again" if survivors
            else " ".join(only) if only else ", ".join(module.files))
    print(f"== {name}: mutating {what}; tests: {' '.join(module.tests)}", flush=True)
    started = time.monotonic()
    with (work / "run.log").open("w") as log:
        status = subprocess.run([str(MUTMUT), "run", "--max-children", str(jobs), *only], cwd=work,
                                env=env, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
    if status != 0:
        print(f"mutmut failed for {name} (exit {status}); see {work / 'run.log'}", file=sys.stderr)
        return status
    report(name, work, time.monotonic() - started)
    return 0


USAGE = """usage: scripts/mutate [--fresh | --survivors | --report] [MODULE...] [-- MUTANT_GLOB...]
       scripts/mutate --list
  (all modules by default; mutant globs, e.g. '*ǁ_rotate__*', limit the run to those mutants)

  (none)       mutate and test; results are kept, a second run tests only changed functions
  --fresh      forget the module's earlier results first (after changing its tests)
  --survivors  test again only the mutants that were not killed (after adding tests)
  --report     print the last results, survivors listed; run nothing"""


def main(argv: list[str]) -> int:
    globs: list[str] = []
    if "--" in argv:  # mutant name globs for mutmut, e.g. '*SessionServiceǁ_rotate*'
        argv, globs = argv[: argv.index("--")], argv[argv.index("--") + 1:]
    flags = {a for a in argv if a.startswith("-")}
    names = [a for a in argv if not a.startswith("-")] or list(MODULES)
    if flags - {"--list", "--fresh", "--survivors", "--report"} or len(flags) > 1:
        print(USAGE, file=sys.stderr)
        return 2
    if "--list" in flags:
        for name, module in MODULES.items():
            note = f"  ({module.note})" if module.note else ""
            print(f"{name}: {' '.join(module.files)}{note}\n    tests: {' '.join(module.tests)}")
        return 0
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        print(f"unknown module(s) {unknown}; choose from {', '.join(MODULES)}", file=sys.stderr)
        return 2
    if "--report" in flags:
        for name in names:
            report(name, WORK / name, None)
        return 0
    jobs = int(os.environ.get("MUTATE_JOBS", "2"))
    worst = 0
    for name in names:
        worst = max(worst, run(name, jobs, fresh="--fresh" in flags, survivors="--survivors" in flags,
                               globs=globs))
    return worst


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
