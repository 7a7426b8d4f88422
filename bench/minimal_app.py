"""The floor for a refresh: a minimal FastAPI app doing one SQLite WAL transaction and one ES256
signature per request, with nothing of jwtwarden's rules (no family lock, no reuse detection, no
row MACs, no grace window, no deny list).

    python bench/minimal_app.py PORT DATABASE TOKENS_FILE N

creates N chains (their first refresh tokens written to TOKENS_FILE, one per line) and serves
``POST /refresh`` on 127.0.0.1:PORT under uvicorn with the options ``jwtwarden serve`` uses.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import sqlite3
import sys
import time
from pathlib import Path

import uvicorn
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from fastapi import FastAPI
from pydantic import BaseModel
from starlette.responses import JSONResponse


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Body(BaseModel):
    refresh_token: str


def build(database: str) -> tuple[FastAPI, sqlite3.Connection]:
    db = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE IF NOT EXISTS tokens (hash BLOB PRIMARY KEY, subject TEXT NOT NULL, "
               "used_at REAL, created_at REAL NOT NULL)")
    key = ec.generate_private_key(ec.SECP256R1())
    header = b64(json.dumps({"alg": "ES256", "typ": "JWT", "kid": "k1"}).encode())
    app = FastAPI()

    def sign(subject: str) -> str:
        now = int(time.time())
        payload = b64(json.dumps({"iss": "http://127.0.0.1", "aud": "api", "sub": subject, "iat": now,
                                  "exp": now + 600, "jti": secrets.token_urlsafe(12)}).encode())
        r, s = decode_dss_signature(key.sign(f"{header}.{payload}".encode(), ec.ECDSA(hashes.SHA256())))
        return f"{header}.{payload}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    @app.post("/refresh")
    async def refresh(body: Body) -> JSONResponse:
        digest = hashlib.sha256(body.refresh_token.encode()).digest()
        successor = secrets.token_urlsafe(32)
        now = time.time()
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT subject, used_at FROM tokens WHERE hash = ?", (digest,)).fetchone()
            if row is None or row[1] is not None:
                db.execute("ROLLBACK")
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            db.execute("UPDATE tokens SET used_at = ? WHERE hash = ?", (now, digest))
            db.execute("INSERT INTO tokens VALUES (?, ?, NULL, ?)",
                       (hashlib.sha256(successor.encode()).digest(), row[0], now))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return JSONResponse({"access_token": sign(row[0]), "token_type": "Bearer", "expires_in": 600,
                             "refresh_token": successor}, headers={"Cache-Control": "no-store"})

    return app, db


def main() -> None:
    port, database, tokens_file, count = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
    app, db = build(database)
    tokens = [secrets.token_urlsafe(32) for _ in range(count)]
    db.executemany("INSERT INTO tokens VALUES (?, ?, NULL, ?)",
                   [(hashlib.sha256(t.encode()).digest(), f"user-{i}", time.time()) for i, t in enumerate(tokens)])
    tokens_file.write_text("\n".join(tokens) + "\n")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, server_header=False)


if __name__ == "__main__":
    main()
