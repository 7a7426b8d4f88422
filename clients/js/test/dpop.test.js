// DPoP (RFC 9449) in the browser SDK, with node's test runner and node's WebCrypto: the proof
// format, a fresh proof per request and per retry, nonces per origin, the key made once and
// kept in the key store (IndexedDB in a browser; tests/test_client_browser_dpop.py runs that
// in Chromium against the real service).

import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, test } from "node:test";

import { createClient } from "../src/index.js";
import {
  API, FakeLocks, FakeService, MemoryKeyStore, PASSWORD, SERVICE, checkProof, decodeProof,
  fakeClock, thumbprint, tokenHash,
} from "./fakes.js";

let clients = [];
let service;
let locks;
let clock;
let keys;

function tab(options = {}) {
  const client = createClient({
    serviceUrl: SERVICE, apiOrigins: [API], fetch: (...args) => service.fetch(...args), locks, now: clock,
    handoverTimeout: 2000, dpop: true, dpopKeyStore: keys, ...options,
  });
  clients.push(client);
  return client;
}

const proofsTo = (path) => service.proofs.filter((p) => p.path === path);

beforeEach(() => {
  clock = fakeClock();
  service = new FakeService({ now: clock });
  locks = new FakeLocks();
  keys = new MemoryKeyStore();
});

afterEach(() => {
  for (const client of clients) client.close();
  clients = [];
});

describe("proofs", () => {
  test("login sends a proof without ath; the session is DPoP-bound to the key's thumbprint", async () => {
    const a = tab();
    await a.login("alice", PASSWORD);
    const [login] = proofsTo("/v1/auth/login");
    assert.equal(login.refused, null);
    const { header, claims } = decodeProof(login.proof);
    assert.deepEqual(Object.keys(header).sort(), ["alg", "jwk", "typ"]);
    assert.equal(header.typ, "dpop+jwt");
    assert.equal(header.alg, "ES256");
    assert.deepEqual(Object.keys(header.jwk), ["crv", "kty", "x", "y"]); // public members only
    assert.deepEqual(Object.keys(claims).sort(), ["htm", "htu", "iat", "jti"]);
    assert.equal(claims.htm, "POST");
    assert.equal(claims.htu, `${SERVICE}/v1/auth/login`);
    assert.equal(claims.iat, Math.floor(clock() / 1000));
    assert.match(claims.jti, /^[A-Za-z0-9_-]{22}$/); // 128 random bits
    assert.equal(await a.getDPoPThumbprint(), await thumbprint(header.jwk));
    const [family] = service.families.values();
    assert.equal(family.jkt, await a.getDPoPThumbprint());
  });

  test("a resource request: Authorization: DPoP, ath of the token, htu without query or fragment", async () => {
    const a = tab();
    await a.login("alice", PASSWORD);
    const answer = await a.fetch(`${API}/hello?q=1&r=%2F#frag`);
    assert.equal(answer.status, 200);
    const [call] = proofsTo("/hello");
    const token = await a.getAccessToken();
    const { claims } = decodeProof(call.proof);
    assert.equal(claims.htm, "GET");
    assert.equal(claims.htu, `${API}/hello`);
    assert.equal(claims.ath, await tokenHash(token));
    assert.equal(service.log.at(-1).authorization, `DPoP ${token}`);
  });

  test("every request gets a fresh proof; a replayed one is refused by the server", async () => {
    const a = tab();
    await a.login("alice", PASSWORD);
    for (let i = 0; i < 3; i++) assert.equal((await a.fetch(`${API}/hello`)).status, 200);
    const jtis = service.proofs.map((p) => decodeProof(p.proof).claims.jti);
    assert.equal(new Set(jtis).size, jtis.length);
    const token = await a.getAccessToken();
    const replayed = proofsTo("/hello")[0].proof;
    await assert.rejects(checkProof(replayed, { method: "GET", url: `${API}/hello`, token, now: clock,
      seen: service.seen }), /jti/);
  });

  test("a proof's signature verifies under its jwk, and breaks with any change", async () => {
    const a = tab();
    await a.login("alice", PASSWORD);
    const { proof } = proofsTo("/v1/auth/login")[0];
    const check = (p) => checkProof(p, { method: "POST", url: `${SERVICE}/v1/auth/login`, now: clock, seen: new Set() });
    assert.equal(await check(proof), await a.getDPoPThumbprint());
    const [h, c, s] = proof.split(".");
    const claims = JSON.parse(Buffer.from(c, "base64url"));
    const forged = Buffer.from(JSON.stringify({ ...claims, htm: "GET" })).toString("base64url");
    await assert.rejects(check(`${h}.${forged}.${s}`), /signature/);
  });

  test("refresh and logout prove the key too; the refresh keeps the binding", async () => {
    const a = tab();
    await a.login("alice", PASSWORD);
    await a.refresh();
    assert.equal(proofsTo("/v1/auth/refresh").length, 1);
    const token = await a.getAccessToken();
    assert.equal(service.access.get(token).jkt, await a.getDPoPThumbprint());
    await a.logout();
    const [logout] = proofsTo("/v1/auth/logout");
    assert.equal(decodeProof(logout.proof).claims.ath, await tokenHash(token));
    assert.deepEqual(service.revoked, ["logout"]);
  });

  test("iat follows the injected clock", async () => {
    const a = tab();
    await a.login("alice", PASSWORD);
    clock.advance(600);
    await a.fetch(`${API}/hello`);
    assert.equal(decodeProof(proofsTo("/hello")[0].proof).claims.iat, Math.floor(clock() / 1000));
  });
});

describe("nonces", () => {
  test("the token endpoint's use_dpop_nonce: one retry with a fresh proof and the nonce", async () => {
    service.nonces[SERVICE] = "svc-nonce.1";
    const a = tab();
    await a.login("alice", PASSWORD);
    const [first, second] = proofsTo("/v1/auth/login");
    assert.match(first.refused, /use_dpop_nonce/);
    assert.equal(second.refused, null);
    assert.equal(decodeProof(second.proof).claims.nonce, "svc-nonce.1");
    assert.notEqual(decodeProof(first.proof).claims.jti, decodeProof(second.proof).claims.jti);
    await a.refresh(); // the nonce is cached: no second round trip
    assert.deepEqual(proofsTo("/v1/auth/refresh").map((p) => p.refused), [null]);
  });

  test("a resource server's 401 use_dpop_nonce: one retry; nonces are kept per origin", async () => {
    service.nonces[SERVICE] = "svc-nonce";
    const a = tab();
    await a.login("alice", PASSWORD);
    service.nonces[API] = "api-nonce";
    assert.equal((await a.fetch(`${API}/hello`)).status, 200);
    const calls = proofsTo("/hello");
    assert.equal(calls.length, 2);
    assert.equal(decodeProof(calls[0].proof).claims.nonce, undefined); // the service's is not sent here
    assert.equal(decodeProof(calls[1].proof).claims.nonce, "api-nonce");
    assert.equal((await a.fetch(`${API}/hello`)).status, 200);
    assert.equal(proofsTo("/hello").length, 3);
  });

  test("a nonce that keeps being refused is retried once only", async () => {
    const a = tab();
    await a.login("alice", PASSWORD);
    service.nonces[API] = "changes";
    const original = service.fetch;
    let n = 0;
    service.fetch = async (...args) => {
      service.nonces[API] = `changes-${++n}`; // a server whose nonce is always already stale
      return original(...args);
    };
    const answer = await a.fetch(`${API}/hello`);
    assert.equal(answer.status, 401);
    // two tries, then the SDK refreshes once after the 401 and tries twice more: bounded
    assert.equal(proofsTo("/hello").length, 4);
  });
});

describe("the key", () => {
  test("non-extractable, made once, shared by the tabs and kept in the store", async () => {
    const a = tab();
    const b = tab();
    const [ja, jb] = await Promise.all([a.getDPoPThumbprint(), b.getDPoPThumbprint()]);
    assert.equal(ja, jb);
    assert.equal(keys.saves, 1);
    const { privateKey, publicKey } = keys.keys.get(SERVICE);
    assert.equal(privateKey.extractable, false);
    assert.deepEqual(privateKey.usages, ["sign"]);
    assert.equal(privateKey.algorithm.namedCurve, "P-256");
    await assert.rejects(crypto.subtle.exportKey("jwk", privateKey));
    await assert.rejects(crypto.subtle.exportKey("pkcs8", privateKey));
    assert.equal(publicKey.type, "public");
    const later = tab(); // a reload: the same key from the store
    assert.equal(await later.getDPoPThumbprint(), ja);
    assert.equal(keys.saves, 1);
  });

  test("another tab takes over the DPoP-bound session and proves the same key", async () => {
    const a = tab();
    await a.login("alice", PASSWORD);
    const b = tab();
    assert.equal(await b.start(), true);
    assert.equal((await b.fetch(`${API}/hello`)).status, 200);
    assert.equal(service.log.at(-1).authorization.split(" ")[0], "DPoP");
  });

  test("without dpop: no key, no proof, Bearer", async () => {
    const a = tab({ dpop: false });
    await a.login("alice", PASSWORD);
    assert.equal((await a.fetch(`${API}/hello`)).status, 200);
    assert.equal(await a.getDPoPThumbprint(), null);
    assert.equal(a.dpop, false);
    assert.deepEqual(service.proofs, []);
    assert.equal(keys.loads, 0);
    assert.match(service.log.at(-1).authorization, /^Bearer /);
  });

  test("a key store that fails: login is refused as unsupported, nothing is sent", async () => {
    const a = tab({ dpopKeyStore: { load: async () => { throw new Error("blocked"); }, save: async () => {} } });
    await assert.rejects(a.login("alice", PASSWORD), { code: "unsupported" });
    assert.deepEqual(service.log.filter((e) => e.path === "/v1/auth/login"), []);
  });
});
