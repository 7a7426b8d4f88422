"""Crash: ``jwtwarden serve`` killed with SIGKILL while clients refresh, restarted on the same data.

Several clients, each with its own session, refresh in a loop over HTTP; the server is killed
in the middle (SIGKILL: no shutdown code runs) and restarted on the same database. Each client
holds the last refresh token it *received*, which is also the one it sent when the crash hit.
For that request the crash fell either

- before the rotation committed: the held token is still the family's usable token; or
- after the commit but before the answer reached the client: the held token is now *used*,
  and the family's one usable token is its successor, which the client never saw.

Where the crash falls for most clients is chance; one client makes sure of the second case in
every run: it sends its refresh on a raw connection, never reads the answer, and the server is
killed once the database shows that rotation committed.

After the restart, for EVERY family (read from the database): exactly one usable refresh
token, never two, never none while not revoked, and it is the held token or its direct
successor (generation + 1). Then each client retries with the held token:

- not committed: the refresh succeeds;
- committed, strict mode (grace window 0 s, the default): presenting a used token is reuse,
  so the family is revoked (``refresh_reused``) and the user logs in again. This is the
  designed strict behaviour: the service cannot tell a client whose answer was lost from a
  thief replaying a stolen token, and refuses both;
- committed, with ``JWTWARDEN_GRACE_WINDOW`` set: the retry gets exactly the committed
  successor, and the session goes on.

Runs on the embedded SQLite default and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from jwtwarden import decode_unverified
from tests.conftest import (
    POSTGRES_ADMIN_URL,
    create_postgres_database,
    drop_postgres_database,
    postgres_available,
    require_service,
)
from tests.servicekit import (
    FamilyRow,
    ServerProcess,
    add_client,
    read_families,
    running_server,
    server_env,
    token_hash,
    tokens,
)

CLIENTS = 16  # many requests in flight: some crash after their commit
KILL_AFTER = 30  # successful refreshes (all clients together) before the SIGKILL
GRACE = 60  # the largest allowed: the retry must come within it, restart included


@dataclass
class Client:
    sid: str
    held: str  # the last refresh token received: what the client presents next
    refreshes: int = 0  # successful rotations seen, so ``held`` is of this generation


@dataclass
class Crashed:
    """A server killed while its clients refreshed, restarted, and the families it then held."""

    server: ServerProcess
    clients: list[Client]  # clients[0] lost its answer for sure; the others where the crash hit
    database: Path | str  # what read_families reads
    before: dict[str, FamilyRow]  # the families after the restart, before any retry


async def refresh_until_the_crash(url: str, clients: list[Client], kill: asyncio.Event) -> None:
    async def loop(http: httpx.AsyncClient, client: Client) -> None:
        while True:
            try:
                response = await http.post("/v1/auth/refresh", json={"refresh_token": client.held})
            except httpx.TransportError:
                return  # the server died: the client still holds what it sent
            assert response.status_code == 200, response.text
            client.held = response.json()["refresh_token"]
            client.refreshes += 1
            if sum(c.refreshes for c in clients) >= KILL_AFTER:
                kill.set()

    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        await asyncio.gather(*(loop(http, c) for c in clients))


async def send_and_never_read(server: ServerProcess, client: Client, database: Path | str
                              ) -> asyncio.StreamWriter:
    """Send a refresh on a raw connection, never read the answer, and wait until it committed."""
    body = json.dumps({"refresh_token": client.held}).encode()
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"POST /v1/auth/refresh HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    await writer.drain()
    deadline = asyncio.get_running_loop().time() + 30
    while (await asyncio.to_thread(read_families, database))[client.sid].generation == client.refreshes:
        assert asyncio.get_running_loop().time() < deadline, "the rotation never committed"
        await asyncio.sleep(0.01)  # polling the database for the commit, a bounded wait
    return writer


async def run_and_kill(server: ServerProcess, clients: list[Client], lost: Client,
                       database: Path | str) -> None:
    kill = asyncio.Event()
    refreshing = asyncio.create_task(refresh_until_the_crash(server.url, clients, kill))
    await asyncio.wait_for(kill.wait(), timeout=120)
    # one client is sure to lose its answer: the rotation commits, the answer is never read
    unread = await send_and_never_read(server, lost, database)
    server.kill()  # SIGKILL while the other clients' requests are in flight
    await asyncio.wait_for(refreshing, timeout=60)
    unread.close()
    with contextlib.suppress(OSError):
        await unread.wait_closed()


def crash(tmp: Path, backend: str, grace: int) -> Iterator[Crashed]:
    database: Path | str = tmp / "data" / "jwtwarden.db"  # the embedded default
    extra = {"JWTWARDEN_GRACE_WINDOW": str(grace)}
    if backend == "postgresql":
        require_service(postgres_available(), "PostgreSQL at " + POSTGRES_ADMIN_URL)
        database = create_postgres_database()
        extra["JWTWARDEN_DATABASE_URL"] = database
    try:
        with running_server(server_env(tmp, **extra)) as server:
            backend_client = add_client(server.env, "backend", "sessions")
            clients = []
            for i in range(CLIENTS):  # trusted-backend sessions: families without argon2's cost
                pair = tokens(httpx.post(server.url + "/v1/sessions", timeout=30,
                                         auth=backend_client, json={"subject": f"user-{i}"}))
                clients.append(Client(decode_unverified(pair["access_token"]).payload["sid"],
                                      pair["refresh_token"]))
            asyncio.run(run_and_kill(server, clients[1:], clients[0], database))
            server.start()  # the same port, environment and data
            yield Crashed(server, clients, database, read_families(database))
    finally:
        if isinstance(database, str):
            drop_postgres_database(database)


@pytest.fixture(scope="module")
def crashed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Crashed]:
    backend, mode = request.param
    yield from crash(tmp_path_factory.mktemp(mode), backend, GRACE if mode == "grace" else 0)


STRICT = [("sqlite", "strict"), ("postgresql", "strict")]
GRACEFUL = [("sqlite", "grace"), ("postgresql", "grace")]


def ids(case: tuple[str, str]) -> str:
    return "-".join(case)


def committed(family: FamilyRow, client: Client) -> bool:
    """Whether the rotation of ``client.held`` committed before the crash (its answer was lost)."""
    return family.generation == client.refreshes + 1


def retry(crashed: Crashed, client: Client) -> httpx.Response:
    return httpx.post(crashed.server.url + "/v1/auth/refresh", json={"refresh_token": client.held},
                      timeout=30)


@pytest.mark.parametrize("crashed", STRICT + GRACEFUL, indirect=True, ids=ids)
def test_after_a_sigkill_every_family_has_exactly_one_usable_token(crashed: Crashed) -> None:
    assert set(crashed.before) == {c.sid for c in crashed.clients}
    assert committed(crashed.before[crashed.clients[0].sid], crashed.clients[0])  # the lost answer
    for client in crashed.clients:
        family = crashed.before[client.sid]
        assert family.revoked_reason is None
        assert len(family.usable) == 1  # never two, never none
        if committed(family, client):
            assert token_hash(client.held) not in family.usable  # spent by the lost answer
        else:
            assert family.generation == client.refreshes
            assert family.usable == {token_hash(client.held)}


@pytest.mark.parametrize("crashed", STRICT, indirect=True, ids=ids)
def test_after_a_sigkill_strict_mode_treats_the_retry_of_a_committed_rotation_as_reuse(
    crashed: Crashed,
) -> None:
    retries = {c.sid: retry(crashed, c) for c in crashed.clients}
    after = read_families(crashed.database)
    for client in crashed.clients:
        response = retries[client.sid]
        if committed(crashed.before[client.sid], client):  # the answer was lost, and so is the session
            assert response.status_code == 400 and response.json()["reason"] == "refresh_reused"
            assert after[client.sid].revoked_reason == "refresh_reused"
            assert after[client.sid].usable == frozenset()
        else:  # the crash came first: nothing happened, the session goes on
            assert response.status_code == 200
            assert after[client.sid].usable == {token_hash(response.json()["refresh_token"])}


@pytest.mark.parametrize("crashed", GRACEFUL, indirect=True, ids=ids)
def test_after_a_sigkill_a_retry_within_the_grace_window_gets_the_committed_successor(
    crashed: Crashed,
) -> None:
    retries = {c.sid: retry(crashed, c) for c in crashed.clients}
    after = read_families(crashed.database)
    for client in crashed.clients:
        response = retries[client.sid]
        assert response.status_code == 200
        successor = response.json()["refresh_token"]
        before = crashed.before[client.sid]
        if committed(before, client):  # the same successor the lost answer carried
            assert before.usable == {token_hash(successor)}
        else:
            assert before.usable == {token_hash(client.held)}
        assert after[client.sid].revoked_reason is None
        assert after[client.sid].usable == {token_hash(successor)}
