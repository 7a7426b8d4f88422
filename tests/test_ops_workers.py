"""``jwtwarden serve --workers 2`` as a real process (issue #12): the start-up runs once in the
parent, every worker shares the deny list (a revocation through one worker is refused by every
worker within a second, on SQLite alone and with Redis), the metrics of all workers come out
of any one of them, and a killed worker is replaced.

Which worker answers is the kernel's choice (one shared listening socket), so each request
goes on a new connection and the answer's generated ``X-Request-ID`` names the process that
gave it (``<process>-<random>``, see :mod:`jwtwarden.service.logs`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.infra import private_redis
from tests.servicekit import (
    PASSWORD,
    TEST_KEK,
    ServerProcess,
    add_user,
    free_port,
    running_server,
    server_env,
    tokens,
)

METRICS_TOKEN = "scrape-me-0123456789abcdef"
MULTIPROC = "PROMETHEUS_MULTIPROC_DIR"
DEADLINE = 1.0  # seconds within which every worker refuses a revoked token
WORKERS = ("--workers", "2")


class Answer(NamedTuple):
    sent: float  # seconds after the revocation was answered, when the request was sent
    worker: str
    status: int
    reason: str | None


def worker_of(response: httpx.Response) -> str:
    return response.headers["x-request-id"].split("-", 1)[0]


def _until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)  # waiting for processes, not for the clock
    raise AssertionError(what)


@contextmanager
def two_workers(tmp_path: Path, **extra: str) -> Iterator[ServerProcess]:
    env = server_env(tmp_path, JWTWARDEN_KEK=TEST_KEK, JWTWARDEN_METRICS_TOKEN=METRICS_TOKEN,
                     JWTWARDEN_LOG_FORMAT="json", **extra)
    add_user(env, "alice", PASSWORD)
    with running_server(env, args=(*WORKERS, "--log-level", "info"), timeout=90) as server:
        seen: set[str] = set()

        def both_answer() -> bool:
            seen.add(worker_of(httpx.get(server.url + "/healthz", timeout=10)))
            return len(seen) == 2

        _until(both_answer, "the two workers did not both answer")
        yield server


def scrape(url: str) -> tuple[str, dict[str, Any]]:
    """(the worker that answered, the metric families parsed by prometheus_client's parser)"""
    response = httpx.get(url + "/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200
    return worker_of(response), {f.name: f for f in text_string_to_metric_families(response.text)}


def sample(families: dict[str, Any], family: str, name: str | None = None, **labels: str) -> float:
    values = [s.value for s in families[family].samples
              if s.name == (name or family) and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(values) == 1, (family, labels, values)
    return float(values[0])


def _login(url: str) -> dict[str, Any]:
    return tokens(httpx.post(url + "/v1/auth/login", json={"username": "alice", "password": PASSWORD}))


def _revocation_reaches_every_worker(server: ServerProcess) -> None:
    pair = _login(server.url)
    bearer = {"authorization": f"Bearer {pair['access_token']}"}
    accepted: set[str] = set()

    def both_accept() -> bool:
        response = httpx.get(server.url + "/v1/auth/userinfo", headers=bearer)
        assert response.status_code == 200, response.text
        accepted.add(worker_of(response))
        return len(accepted) == 2

    _until(both_accept, "the token was not accepted by both workers")
    logout = httpx.post(server.url + "/v1/auth/logout", headers=bearer)
    revoked_at = time.monotonic()
    assert logout.status_code == 204
    answers: list[Answer] = []

    def refused_by_both_after_deadline() -> bool:
        sent = time.monotonic() - revoked_at
        response = httpx.get(server.url + "/v1/auth/userinfo", headers=bearer)
        reason = response.json().get("reason") if response.status_code != 200 else None
        answers.append(Answer(sent, worker_of(response), response.status_code, reason))
        return len({a.worker for a in answers if a.sent > DEADLINE}) == 2

    _until(refused_by_both_after_deadline, "both workers did not answer after the deadline", 30)
    late = [a for a in answers if a.sent > DEADLINE and a.status != 401]
    assert late == [], f"accepted more than {DEADLINE} s after the revocation: {late}"
    assert {a.reason for a in answers if a.sent > DEADLINE} == {"revoked"}
    assert {a.worker for a in answers if a.sent > DEADLINE} == accepted  # the same two workers


def test_a_revocation_through_one_worker_is_refused_by_every_worker_within_a_second_sqlite(
        tmp_path: Path) -> None:
    with two_workers(tmp_path) as server:
        _revocation_reaches_every_worker(server)


def test_a_revocation_through_one_worker_is_refused_by_every_worker_within_a_second_redis(
        tmp_path: Path) -> None:
    with private_redis() as redis, two_workers(tmp_path, JWTWARDEN_REDIS_URL=redis.url) as server:
        ready = httpx.get(server.url + "/readyz")
        _revocation_reaches_every_worker(server)
    assert ready.status_code == 200 and ready.json()["checks"]["redis"] == "ok"


def test_the_one_time_start_up_runs_once_in_the_parent_before_the_workers(tmp_path: Path) -> None:
    env = server_env(tmp_path, JWTWARDEN_LOG_FORMAT="json")  # no KEK: the development file
    with running_server(env, args=(*WORKERS, "--log-level", "info"), timeout=90) as server:
        parent = server.proc.pid if server.proc else -1
        _until(lambda: len(_worker_pids(parent)) == 2, "no two workers")
        workers = _worker_pids(parent)
        _until(lambda: _log_has(server, "Application startup complete", len(workers)),
               "the workers did not start")
    records = _records(server)
    created = [r for r in records if r["message"].startswith("created signing key")]
    assert len(created) == 1 and created[0]["pid"] == parent
    migrated_before = min(r["time"] for r in records if r["pid"] in workers)
    assert created[0]["time"] <= migrated_before  # before any worker ran
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("data")) == ["data", "data.kek"]
    keys = subprocess.run([sys.executable, "-m", "jwtwarden", "keys", "list"], env=env,
                          capture_output=True, text=True, check=True).stdout
    assert len([line for line in keys.splitlines() if "active" in line]) == 1


def test_the_metrics_of_every_worker_come_out_of_any_worker(tmp_path: Path) -> None:
    with two_workers(tmp_path) as server:
        served = [worker_of(httpx.get(server.url + "/.well-known/jwks.json")) for _ in range(40)]
        assert len(set(served)) == 2, "the requests did not reach both workers"
        pair = _login(server.url)
        spent = pair["refresh_token"]
        assert httpx.post(server.url + "/v1/auth/refresh", json={"refresh_token": spent}).status_code == 200
        reused = httpx.post(server.url + "/v1/auth/refresh", json={"refresh_token": spent})
        assert reused.json()["reason"] == "refresh_reused"
        assert httpx.post(server.url + "/v1/auth/login",
                          json={"username": "alice", "password": "wrong!"}).status_code == 400
        directory = _environ(_worker_pids(server.proc.pid if server.proc else -1)[0])[MULTIPROC]
        assert Path(directory).is_dir()
        seen_by: dict[str, dict[str, Any]] = {}

        def scraped_from_both() -> bool:
            worker, families = scrape(server.url)
            seen_by[worker] = families
            return len(seen_by) == 2

        _until(scraped_from_both, "no scrape from each worker")
    assert not Path(directory).exists()  # the run's directory is gone with it
    for families in seen_by.values():  # whichever worker answers, the sums are the same
        assert sample(families, "jwtwarden_http_request_duration_seconds",
                      "jwtwarden_http_request_duration_seconds_count",
                      method="GET", route="/.well-known/jwks.json", status="200") == 40
        assert sample(families, "jwtwarden_logins", "jwtwarden_logins_total", outcome="success") == 1
        assert sample(families, "jwtwarden_logins", "jwtwarden_logins_total",
                      outcome="invalid_credentials") == 1
        assert sample(families, "jwtwarden_refreshes", "jwtwarden_refreshes_total", outcome="rotated") == 1
        assert sample(families, "jwtwarden_refreshes", "jwtwarden_refreshes_total", outcome="reused") == 1
        assert sample(families, "jwtwarden_families_revoked", "jwtwarden_families_revoked_total") == 1
        assert sample(families, "jwtwarden_workers") == 2
        assert sample(families, "jwtwarden_denylist_entries") >= 1


def test_a_killed_worker_is_replaced_and_the_service_answers_throughout(tmp_path: Path) -> None:
    with two_workers(tmp_path) as server:
        parent = server.proc.pid if server.proc else -1
        before = _worker_pids(parent)
        assert len(before) == 2
        tags = {worker_of(httpx.get(server.url + "/healthz")) for _ in range(40)}
        victim = before[0]
        os.kill(victim, signal.SIGKILL)
        statuses: list[int] = []
        answered_by: set[str] = set()

        def replaced() -> bool:
            response = httpx.get(server.url + "/healthz", timeout=10)
            statuses.append(response.status_code)
            answered_by.add(worker_of(response))
            now = _worker_pids(parent)
            return len(now) == 2 and victim not in now and bool(answered_by - tags)

        _until(replaced, "uvicorn did not replace the killed worker")
        assert set(statuses) == {200}  # the other worker answered meanwhile

        def counted_two() -> bool:  # the killed worker's gauges are forgotten
            return sample(scrape(server.url)[1], "jwtwarden_workers") == 2

        _until(counted_two, "the metrics still count the killed worker", timeout=15)


# ---- helpers -----------------------------------------------------------------------------------


def _worker_pids(parent: int) -> list[int]:
    """uvicorn's worker processes: the parent's children started by multiprocessing's spawn
    (its resource tracker, also a child, excluded)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"spawn_main" in cmdline and stat.rsplit(")", 1)[1].split()[0] != "Z":
            pids.append(int(entry.name))
    return sorted(pids)


def _records(server: ServerProcess) -> list[dict[str, Any]]:
    assert server.log is not None
    return [json.loads(line) for line in server.log.read_text().splitlines() if line.startswith("{")]


def _log_has(server: ServerProcess, text: str, times: int) -> bool:
    return sum(text in r["message"] for r in _records(server)) >= times


def _environ(pid: int) -> dict[str, str]:
    raw = (Path("/proc") / str(pid) / "environ").read_bytes()
    return dict(item.decode().split("=", 1) for item in raw.split(b"\0") if b"=" in item)


def test_the_command_line_and_the_config_file_reach_every_worker(tmp_path: Path) -> None:
    """--config and --port are the parent's; the workers read them as JWTWARDEN_CONFIG and
    JWTWARDEN_PORT: each worker knows the metrics token of the file and is the issuer at the
    port the parent was given (no JWTWARDEN_ISSUER: the issuer derives from the port)."""
    config = tmp_path / "jwtwarden.toml"
    config.write_text(f'metrics_token = "{METRICS_TOKEN}"\nkek = "{TEST_KEK}"\n')
    config.chmod(0o600)
    env = server_env(tmp_path)
    server = ServerProcess(env, free_port(), ("--config", str(config), *WORKERS))
    server.start(timeout=90)
    try:
        issuers: dict[str, str] = {}
        scraped: set[str] = set()

        def both_workers_agree() -> bool:
            metadata = httpx.get(server.url + "/.well-known/oauth-authorization-server")
            issuers[worker_of(metadata)] = metadata.json()["issuer"]
            scraped.add(scrape(server.url)[0])
            return len(issuers) == 2 and len(scraped) == 2

        _until(both_workers_agree, "the two workers did not both answer")
    finally:
        server.stop()
    assert set(issuers.values()) == {server.url}
