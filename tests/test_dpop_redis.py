"""The DPoP replay store shared by replicas: a real Redis, and two service replicas on it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
import redis.asyncio

from jwtwarden import Key
from jwtwarden.dpop import DPoPVerifier, create_proof, replay_key
from jwtwarden.errors import DPoPReplayUnavailable, InvalidDPoPProof
from jwtwarden.resource.dpop_redis import RedisReplayStore
from tests.infra import private_redis
from tests.servicekit import (
    PASSWORD,
    ServerProcess,
    add_user,
    free_port,
    server_env,
    start_together,
)

KEY = Key.generate("ES256")
URL = "https://api.example.com/items"


def test_a_proof_is_stored_once_with_its_window_as_expiry_and_no_jti_in_clear() -> None:
    with private_redis() as server:
        async def run() -> None:
            client = redis.asyncio.Redis.from_url(server.url)
            try:
                dpop = DPoPVerifier(replay=RedisReplayStore(client))
                proof = create_proof(KEY, "GET", URL, jti="secret-jti")
                result = await dpop.averify(proof, method="GET", url=URL)
                with pytest.raises(InvalidDPoPProof) as replayed:
                    await dpop.averify(proof, method="GET", url=URL)
                assert replayed.value.reason == "replayed"
                keys = await client.keys("*")
                assert keys == [b"jwtwarden:dpop:" + replay_key(result.jkt, "secret-jti").hex().encode()]
                assert 60_000 < await client.pttl(keys[0]) <= 66_000
            finally:
                await client.aclose()

        asyncio.run(run())


def test_an_unreachable_redis_fails_closed() -> None:
    async def run() -> None:
        client = redis.asyncio.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5)
        try:
            dpop = DPoPVerifier(replay=RedisReplayStore(client))
            with pytest.raises(DPoPReplayUnavailable):
                await dpop.averify(create_proof(KEY, "GET", URL), method="GET", url=URL)
        finally:
            await client.aclose()

    asyncio.run(run())


def test_service_replicas_refuse_each_others_replayed_proofs(tmp_path: Path) -> None:
    with private_redis() as server:
        env = server_env(tmp_path, JWTWARDEN_REDIS_URL=server.url,
                         JWTWARDEN_ISSUER="http://127.0.0.1:9")  # one issuer for both replicas
        add_user(env)
        replicas = [ServerProcess(dict(env), free_port()) for _ in range(2)]
        start_together(*replicas)
        try:
            login = "http://127.0.0.1:9/v1/auth/login"  # the htu both replicas expect
            proof = create_proof(KEY, "POST", login)
            body = {"username": "alice", "password": PASSWORD}
            first = httpx.post(replicas[0].url + "/v1/auth/login", json=body, headers={"DPoP": proof})
            second = httpx.post(replicas[1].url + "/v1/auth/login", json=body, headers={"DPoP": proof})
            assert first.status_code == 200 and first.json()["token_type"] == "DPoP"
            assert second.status_code == 400 and second.json()["reason"] == "replayed"
        finally:
            for replica in replicas:
                replica.stop()
