// Test doubles for the node unit tests: a token service that keeps jwtwarden's cookie-mode
// rules (strict rotation, reuse revokes the family, double-submit CSRF bound to the session),
// a browser cookie jar shared by the "tabs" of one profile, an exclusive lock manager, and a
// BroadcastChannel whose deliveries a test can hold back. The real service is exercised by
// the Chromium tests (tests/test_client_browser.py).

export const SERVICE = "http://localhost:8000";
export const API = "http://localhost:8001";
export const PASSWORD = "correct horse battery";

let serial = 0;
const fresh = (prefix) => `${prefix}${++serial}_${Math.random().toString(36).slice(2)}`;

const json = (status, body, headers = {}) =>
  new Response(body === null ? null : JSON.stringify(body),
    { status, headers: { "Content-Type": "application/json", ...headers } });

const b64 = (bytes) => Buffer.from(bytes).toString("base64url");
const unb64 = (text) => new Uint8Array(Buffer.from(text, "base64url"));

/** RFC 7638 thumbprint of a P-256 public JWK. */
export async function thumbprint(jwk) {
  const canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
  return b64(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(canonical)));
}

/** base64url SHA-256 of an access token (`ath`). */
export async function tokenHash(token) {
  return b64(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token)));
}

/** Decode a proof without checking it: {header, claims, signature, input}. */
export function decodeProof(proof) {
  const [header, claims, signature, ...rest] = proof.split(".");
  assert(rest.length === 0 && signature, "a compact JWS");
  const parse = (segment) => JSON.parse(new TextDecoder().decode(unb64(segment)));
  return { header: parse(header), claims: parse(claims), signature: unb64(signature), input: `${header}.${claims}` };
}

function assert(condition, what) {
  if (!condition) throw new Error(`bad DPoP proof: ${what}`);
}

/**
 * Check a DPoP proof the way jwtwarden does (RFC 9449 section 4.3): typ, alg ES256, a public
 * P-256 jwk, the signature, htm, htu, iat within 60 s, a jti never seen, ath, nonce. Returns
 * the key's thumbprint; throws on anything wrong.
 */
export async function checkProof(proof, { method, url, token, now, seen, nonce }) {
  const { header, claims, signature, input } = decodeProof(proof);
  assert(header.typ === "dpop+jwt" && header.alg === "ES256", "typ/alg");
  assert(Object.keys(header).sort().join() === "alg,jwk,typ", "header members");
  const { jwk } = header;
  assert(jwk.kty === "EC" && jwk.crv === "P-256" && !("d" in jwk), "jwk");
  const key = await crypto.subtle.importKey("jwk", { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y },
    { name: "ECDSA", namedCurve: "P-256" }, false, ["verify"]);
  assert(await crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key, signature,
    new TextEncoder().encode(input)), "signature");
  const target = new URL(url);
  assert(claims.htm === method, "htm");
  assert(claims.htu === `${target.origin}${target.pathname}`, "htu");
  assert(Number.isInteger(claims.iat) && Math.abs(now() / 1000 - claims.iat) <= 60, "iat");
  assert(typeof claims.jti === "string" && claims.jti.length >= 16 && !seen.has(claims.jti), "jti");
  seen.add(claims.jti);
  if (token === undefined) assert(!("ath" in claims), "no ath without a token");
  else assert(claims.ath === await tokenHash(token), "ath");
  if (nonce !== undefined) assert(claims.nonce === nonce, "use_dpop_nonce");
  return thumbprint(jwk);
}

/** A DPoP key store in memory, in place of IndexedDB. */
export class MemoryKeyStore {
  constructor() {
    this.keys = new Map();
    this.loads = 0;
    this.saves = 0;
  }

  async load(name) {
    this.loads += 1;
    return this.keys.get(name);
  }

  async save(name, pair) {
    this.saves += 1;
    this.keys.set(name, pair);
  }
}

/** One token service, and one browser profile's cookie jar for it. */
export class FakeService {
  constructor({ now = () => Date.now(), lifetime = 900 } = {}) {
    this.now = now;
    this.lifetime = lifetime;
    this.users = new Map([["alice", PASSWORD]]);
    this.families = new Map(); // id -> {user, current, used:Set, revoked, generation}
    this.tokens = new Map(); // refresh token -> family id
    this.access = new Map(); // access token -> {family, exp, revoked}
    this.csrf = new Map(); // csrf token -> family id
    this.jar = {}; // the browser's cookies for the service: refresh, csrf
    this.log = []; // {method, path, credentials, csrf, authorization, cookies}
    this.gate = null; // a promise every request waits for, when set
    this.down = false; // every request fails as a network error
    this.bodyRefreshToken = false; // answer like a service that is not in cookie mode
    this.nonces = { [SERVICE]: null, [API]: null }; // a DPoP nonce required per origin, when set
    this.seen = new Set(); // DPoP jtis
    this.proofs = []; // {origin, path, proof, refused} of every request with a DPoP header
    this.fetch = this.fetch.bind(this);
  }

  get rotations() {
    return [...this.families.values()].reduce((n, f) => n + f.generation, 0);
  }

  get revoked() {
    return [...this.families.values()].filter((f) => f.revoked).map((f) => f.revoked);
  }

  // ---- the service --------------------------------------------------------------------

  /** The thumbprint of the request's valid proof, null without one, or a refusal (Response). */
  async #proof(request, token) {
    const proof = request.headers.get("DPoP");
    if (proof === null) return null;
    const url = new URL(request.url);
    const record = { origin: url.origin, path: url.pathname, proof, refused: null };
    this.proofs.push(record);
    const nonce = this.nonces[url.origin] ?? undefined;
    try {
      return await checkProof(proof, { method: request.method, url: request.url, token,
        now: this.now, seen: this.seen, nonce });
    } catch (error) {
      record.refused = error.message;
      const dpopNonce = nonce && { "DPoP-Nonce": nonce };
      if (url.origin === API) {
        const code = error.message.endsWith("use_dpop_nonce") ? "use_dpop_nonce" : "invalid_dpop_proof";
        return json(401, { error: code }, { "WWW-Authenticate": `DPoP error="${code}"`, ...dpopNonce });
      }
      if (error.message.endsWith("use_dpop_nonce")) return json(400, { error: "use_dpop_nonce" }, dpopNonce);
      return json(400, { error: "invalid_dpop_proof", error_description: error.message });
    }
  }

  #pair(familyId) {
    const family = this.families.get(familyId);
    const refresh = fresh("jwr_");
    family.current = refresh;
    this.tokens.set(refresh, familyId);
    const access = fresh("at_");
    this.access.set(access, { family: familyId, exp: this.now() + 1000 * this.lifetime, user: family.user,
      jkt: family.jkt });
    const csrf = fresh("csrf_");
    this.csrf.set(csrf, familyId);
    this.jar = { refresh, csrf };
    const body = { access_token: access, token_type: family.jkt ? "DPoP" : "Bearer", expires_in: this.lifetime,
      refresh_expires_in: 604800, csrf_token: csrf };
    if (this.bodyRefreshToken) body.refresh_token = refresh;
    return json(200, body);
  }

  #revoke(familyId, reason) {
    const family = this.families.get(familyId);
    if (!family || family.revoked) return;
    family.revoked = reason;
    for (const token of this.access.values()) if (token.family === familyId) token.revoked = true;
  }

  #csrfOk(request, cookies, familyId) {
    const header = request.headers.get("X-CSRF-Token");
    return header && header === cookies.csrf && this.csrf.get(header) === familyId;
  }

  /** The access token of the request, if valid: a DPoP-bound one only as `DPoP` with a proof
   * of its key, an unbound one only as `Bearer`. */
  async #bearer(request) {
    const [scheme, value] = (request.headers.get("Authorization") ?? "").split(" ");
    const token = this.access.get(value);
    if (!token || token.revoked || token.exp <= this.now()) return null;
    if (!token.jkt) return scheme === "Bearer" ? token : null;
    if (scheme !== "DPoP") return null;
    const jkt = await this.#proof(request, value);
    if (jkt instanceof Response) return jkt;
    return jkt === token.jkt ? token : null;
  }

  async fetch(input, init) {
    const request = new Request(input, init);
    const url = new URL(request.url);
    const cookies = url.origin === SERVICE && request.credentials === "include" ? { ...this.jar } : {};
    this.log.push({ method: request.method, path: url.pathname, origin: url.origin,
      credentials: request.credentials, csrf: request.headers.get("X-CSRF-Token"),
      authorization: request.headers.get("Authorization"), cookies });
    if (this.down) throw new TypeError("fetch failed");
    if (this.gate) await this.gate;
    await new Promise((resolve) => setImmediate(resolve)); // answers arrive in a later task
    if (url.origin === API) {
      const token = await this.#bearer(request);
      if (token instanceof Response) return token;
      return token ? json(200, { sub: "alice" }, this.nonces[API] ? { "DPoP-Nonce": this.nonces[API] } : {})
        : json(401, { error: "invalid_token" }, { "WWW-Authenticate": 'Bearer error="invalid_token"' });
    }
    const route = `${request.method} ${url.pathname}`;
    if (route === "POST /v1/auth/login") {
      const { username, password } = await request.json();
      if (this.users.get(username) !== password) {
        return json(400, { error: "invalid_grant", error_description: "invalid username or password",
          reason: "invalid_credentials" });
      }
      const jkt = await this.#proof(request);
      if (jkt instanceof Response) return jkt;
      const id = fresh("fam_");
      this.families.set(id, { user: username, current: null, used: new Set(), revoked: null, generation: 0, jkt });
      return this.#pair(id);
    }
    if (route === "GET /v1/auth/csrf") {
      const familyId = cookies.refresh && this.tokens.get(cookies.refresh);
      if (!familyId || this.csrf.get(cookies.csrf) !== familyId) {
        return json(400, { error: "invalid_request", error_description: "no session cookie" });
      }
      return json(200, { csrf_token: cookies.csrf });
    }
    if (route === "POST /v1/auth/refresh") {
      const token = cookies.refresh;
      const familyId = token && this.tokens.get(token);
      if (!token) return json(400, { error: "invalid_request", error_description: "refresh_token is required" });
      if (!this.#csrfOk(request, cookies, familyId)) {
        return json(403, { error: "access_denied", error_description: "csrf", reason: "csrf" });
      }
      const family = this.families.get(familyId);
      const jkt = await this.#proof(request);
      if (jkt instanceof Response) return jkt;
      if (family.jkt && jkt !== family.jkt) {
        return json(400, { error: "invalid_dpop_proof", error_description: "not the session's key" });
      }
      const fail = (reason) => {
        this.jar = {};
        return json(400, { error: "invalid_grant", error_description: reason, reason });
      };
      if (family.revoked) return fail("refresh_revoked");
      if (family.current !== token) {
        this.#revoke(familyId, "reuse");
        return fail("refresh_reused");
      }
      family.used.add(token);
      family.generation += 1;
      return this.#pair(familyId);
    }
    if (route === "POST /v1/auth/logout") {
      const bearer = await this.#bearer(request);
      if (bearer instanceof Response) return bearer;
      const familyId = cookies.refresh && this.tokens.get(cookies.refresh);
      if (request.headers.get("Authorization") && !bearer) return json(401, { error: "invalid_token" });
      if (!bearer && !this.#csrfOk(request, cookies, familyId)) return json(403, { reason: "csrf" });
      if (bearer) this.#revoke(bearer.family, "logout");
      if (familyId) this.#revoke(familyId, "logout");
      this.jar = {};
      return new Response(null, { status: 204 });
    }
    if (route === "POST /v1/auth/logout-all") {
      const bearer = await this.#bearer(request);
      if (bearer instanceof Response) return bearer;
      if (!bearer) return json(401, { error: "invalid_token" });
      if (request.headers.get("X-CSRF-Token") !== null && !this.#csrfOk(request, cookies, bearer.family)) {
        return json(403, { reason: "csrf" });
      }
      for (const [id, family] of this.families) if (family.user === bearer.user) this.#revoke(id, "logout_all");
      this.jar = {};
      return new Response(null, { status: 204 });
    }
    return json(404, { error: "not_found" });
  }

  /** Present a refresh token the way an attacker with a stolen cookie would. */
  replay(token) {
    const familyId = this.tokens.get(token);
    const family = this.families.get(familyId);
    if (family.current !== token || family.revoked) {
      this.#revoke(familyId, "reuse");
      return "refresh_reused";
    }
    return "ok";
  }

  revokeAccess(token) {
    this.access.get(token).revoked = true;
  }
}

/** navigator.locks, exclusive and first come first served, per name. */
export class FakeLocks {
  #tails = new Map();
  pending = 0;

  request(name, options, callback) {
    const previous = this.#tails.get(name) ?? Promise.resolve();
    this.pending += 1;
    const run = previous.then(() => {
      this.pending -= 1;
      return callback();
    });
    this.#tails.set(name, run.catch(() => {}));
    return run;
  }
}

/** A "lock manager" that excludes nothing: what a client without Web Locks would do. */
export class NoLocks {
  request(name, options, callback) {
    return Promise.resolve().then(callback);
  }
}

/**
 * A BroadcastChannel class whose messages can be held back until `release()`: the order of a
 * lock grant and a message from another tab is not guaranteed in browsers.
 */
export function heldChannel() {
  const held = [];
  let holding = false;
  let dropping = false;
  class Channel extends BroadcastChannel {
    postMessage(message) {
      if (dropping) return;
      if (holding) held.push(() => super.postMessage(message));
      else super.postMessage(message);
    }
  }
  return {
    Channel,
    hold() { holding = true; },
    drop() { dropping = true; },
    resume() { dropping = false; },
    release() {
      holding = false;
      for (const send of held.splice(0)) send();
    },
  };
}

/** A clock a test moves by hand. */
export function fakeClock(start = 1_700_000_000_000) {
  const clock = () => clock.t;
  clock.t = start;
  clock.advance = (seconds) => { clock.t += 1000 * seconds; };
  return clock;
}

/** Resolve after every pending task and message has been handled. */
export function settle(rounds = 20) {
  let p = Promise.resolve();
  for (let i = 0; i < rounds; i++) p = p.then(() => new Promise((resolve) => setImmediate(resolve)));
  return p;
}
