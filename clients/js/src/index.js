/**
 * jwtwarden in the browser: the other half of the token service, for single-page apps.
 *
 * Where each token lives (the service runs with JWTWARDEN_COOKIE_MODE=1):
 *
 * - the refresh token only in the service's `HttpOnly; Secure; SameSite=Strict` cookie
 *   (`Path=/v1/auth`): no script of the page can read it, and it is only ever sent to the
 *   service's auth endpoints;
 * - the access token only in memory, in a private field of the client (and in the memory of the
 *   other tabs of the origin, handed over by BroadcastChannel); never in `localStorage`,
 *   `sessionStorage`, IndexedDB or a cookie the page can read;
 * - the CSRF token (not a credential on its own) in memory, learned from the service and sent
 *   as `X-CSRF-Token` on every request that carries the cookie.
 *
 * Refreshing: one refresh at a time across every tab of the origin. Each refresh, login and
 * logout runs under one Web Lock; a tab that gets the lock first asks the service for the
 * session's current CSRF token, which changes on every rotation. If it changed since the tab
 * decided to refresh, another tab has rotated already and its tokens are on their way over
 * the BroadcastChannel: the tab takes them instead of refreshing (so strict reuse detection
 * never fires, and two tabs racing give one rotation). A session that ends (reuse detected,
 * revoked, expired, logout in any tab) is announced to every tab, and each tab dispatches
 * exactly one `sessionended` event.
 *
 * DPoP (RFC 9449), opt-in with `dpop: true`: the tokens are bound to a key pair the SDK makes
 * with WebCrypto (P-256, the private key non-extractable: no script can read it, only use it)
 * and keeps in IndexedDB (a CryptoKey is stored as an object, never as key material), one per
 * service. Every request with the token, and every login and refresh, carries a fresh proof
 * (`DPoP` header) signed with it; a stolen access token or refresh cookie is useless without it.
 *
 * No runtime dependencies; ES2022; TypeScript types in index.d.ts.
 */

const REFRESH_MARGIN = 60; // seconds before expiry at which the access token is refreshed
const REQUEST_TIMEOUT = 10_000; // ms, for the SDK's own calls to the service
const HANDOVER_TIMEOUT = 3_000; // ms to wait for another tab's rotated tokens before rotating
const DPOP_DB = "jwtwarden-dpop"; // IndexedDB database of DPoP keys, one per service origin
const DPOP_STORE = "keys";
const DPOP_KEY = { name: "ECDSA", namedCurve: "P-256" };
const DPOP_SIGN = { name: "ECDSA", hash: "SHA-256" };
const NONCE = /^[\x21\x23-\x5b\x5d-\x7e]{1,512}$/; // RFC 9449 section 8.1: NQCHAR
const ENDING_REASONS = new Set([
  "invalid_refresh_token", "refresh_reused", "refresh_expired", "refresh_revoked", "family_too_old",
]);

/** An SDK failure with a stable `code` (see index.d.ts for the list). */
export class AuthError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {{status?: number, reason?: string, retryAfter?: number, cause?: unknown}} [details]
   */
  constructor(code, message, details = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = "AuthError";
    this.code = code;
    this.status = details.status;
    this.reason = details.reason;
    this.retryAfter = details.retryAfter;
  }
}

// ---- DPoP ---------------------------------------------------------------------------------

function b64url(bytes) {
  const array = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let text = "";
  for (const byte of array) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

const utf8 = (text) => new TextEncoder().encode(text);

async function sha256(text) {
  return b64url(await crypto.subtle.digest("SHA-256", utf8(text)));
}

/** DPoP keys in IndexedDB: `{privateKey, publicKey}` CryptoKey objects under the service's
 * origin. The private key is non-extractable, so what is stored cannot be exported either. */
function indexedDBKeyStore(factory) {
  const open = () => new Promise((resolve, reject) => {
    const request = factory.open(DPOP_DB, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(DPOP_STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
  const run = async (mode, action) => {
    const db = await open();
    try {
      return await new Promise((resolve, reject) => {
        const transaction = db.transaction(DPOP_STORE, mode);
        const request = action(transaction.objectStore(DPOP_STORE));
        transaction.oncomplete = () => resolve(request.result);
        transaction.onerror = () => reject(transaction.error);
        transaction.onabort = () => reject(transaction.error);
      });
    } finally {
      db.close();
    }
  };
  return {
    load: (name) => run("readonly", (store) => store.get(name)),
    save: (name, pair) => run("readwrite", (store) => store.put(pair, name)),
  };
}

/** What a proof needs of a key pair: the private key, the header segment (with the public
 * JWK) and the RFC 7638 thumbprint. */
async function dpopKey(pair) {
  const { crv, kty, x, y } = await crypto.subtle.exportKey("jwk", pair.publicKey);
  const jwk = { crv, kty, x, y }; // the required members, in lexicographic order (RFC 7638)
  return {
    privateKey: pair.privateKey,
    jkt: await sha256(JSON.stringify(jwk)),
    header: b64url(utf8(JSON.stringify({ typ: "dpop+jwt", alg: "ES256", jwk }))),
  };
}

/** Whether an answer asks for a (new) server nonce: 400 `use_dpop_nonce` from a token
 * endpoint, 401 with `error="use_dpop_nonce"` from a resource server (RFC 9449 sections 8, 9). */
async function nonceRequested(response) {
  if (!response.headers.get("DPoP-Nonce")) return false;
  if (response.status === 401) {
    return /error="use_dpop_nonce"/.test(response.headers.get("WWW-Authenticate") ?? "");
  }
  if (response.status === 400) return (await jsonBody(response.clone())).error === "use_dpop_nonce";
  return false;
}

function withHeaders(request, headers) {
  const merged = new Headers(request.headers);
  for (const [name, value] of Object.entries(headers)) merged.set(name, value);
  return new Request(request, { headers: merged });
}

// ---- the client -------------------------------------------------------------------------------

function isLoopback(hostname) {
  return hostname === "localhost" || hostname.endsWith(".localhost") || hostname === "[::1]"
    || /^127(\.\d{1,3}){3}$/.test(hostname);
}

function secureOrigin(url, what) {
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(`${what} is not a URL`);
  }
  if (parsed.protocol !== "https:" && !(parsed.protocol === "http:" && isLoopback(parsed.hostname))) {
    throw new TypeError(`${what} must use https (plain http only on localhost)`);
  }
  return parsed.origin;
}

async function jsonBody(response) {
  try {
    const body = await response.json();
    return body !== null && typeof body === "object" ? body : {};
  } catch {
    return {};
  }
}

function validState(message) {
  return typeof message.accessToken === "string" && typeof message.csrfToken === "string"
    && Number.isFinite(message.expiresAt) && Number.isFinite(message.issuedAt)
    && (message.tokenType === "Bearer" || message.tokenType === "DPoP");
}

/**
 * A session with one jwtwarden service, shared by every tab of the page's origin.
 *
 * Events: `login` (this tab has a session: its own login, a restored one, or another tab's
 * login) and `sessionended` (`event.detail.reason`: `logout`, `logout_all`, `refresh_reused`,
 * `refresh_revoked`, `refresh_expired`, `family_too_old`, `invalid_refresh_token`,
 * `no_session`), dispatched once per tab for each session.
 */
export class JwtwardenClient extends EventTarget {
  #service;
  #apiOrigins;
  #fetch;
  #locks;
  #channel;
  #now;
  #margin;
  #timeout;
  #handoverTimeout;
  #lockName;
  #state = null; // {accessToken, expiresAt, csrfToken, issuedAt, tokenType}: memory only
  #dpop = null; // {store, key: Promise of the key, nonces: origin -> nonce}, with `dpop: true`
  #endedAt = 0;
  #inflight = null;
  #started = null;
  #waiters = new Set();

  /** @param {object} options see `ClientOptions` in index.d.ts */
  constructor(options) {
    super();
    const opts = options ?? {};
    this.#service = secureOrigin(opts.serviceUrl, "serviceUrl");
    const pageOrigin = globalThis.location?.origin;
    this.#apiOrigins = new Set([
      this.#service,
      ...(pageOrigin && pageOrigin !== "null" ? [pageOrigin] : []),
      ...(opts.apiOrigins ?? []).map((o) => secureOrigin(o, "apiOrigins entry")),
    ]);
    const fetchImpl = opts.fetch ?? globalThis.fetch;
    if (typeof fetchImpl !== "function") throw new AuthError("unsupported", "fetch is not available");
    this.#fetch = (...args) => fetchImpl(...args); // unbound window.fetch throws "Illegal invocation"
    this.#locks = opts.locks ?? globalThis.navigator?.locks;
    if (!this.#locks || typeof this.#locks.request !== "function") {
      // Without Web Locks two tabs could present the same refresh token, and strict reuse
      // detection would end the session: refuse to run rather than race.
      throw new AuthError("unsupported",
        "the Web Locks API is unavailable (it needs a secure context: https or localhost)");
    }
    const Channel = opts.BroadcastChannel ?? globalThis.BroadcastChannel;
    if (typeof Channel !== "function") {
      throw new AuthError("unsupported", "BroadcastChannel is unavailable");
    }
    this.#now = opts.now ?? Date.now;
    this.#margin = 1000 * (opts.refreshMargin ?? REFRESH_MARGIN);
    this.#timeout = opts.requestTimeout ?? REQUEST_TIMEOUT;
    this.#handoverTimeout = opts.handoverTimeout ?? HANDOVER_TIMEOUT;
    this.#lockName = `jwtwarden-refresh ${this.#service}`;
    if (opts.dpop) {
      if (!globalThis.crypto?.subtle) {
        throw new AuthError("unsupported", "WebCrypto is unavailable (it needs a secure context)");
      }
      const store = opts.dpopKeyStore
        ?? (globalThis.indexedDB ? indexedDBKeyStore(globalThis.indexedDB) : null);
      if (!store) throw new AuthError("unsupported", "IndexedDB is unavailable for the DPoP key");
      this.#dpop = { store, key: null, nonces: new Map() };
    }
    this.#channel = new Channel(`jwtwarden ${this.#service}`);
    this.#channel.onmessage = (event) => this.#onMessage(event.data);
  }

  /** The Web Lock every tab takes to refresh, log in or log out. */
  get lockName() {
    return this.#lockName;
  }

  /** Whether tokens are bound to this browser's DPoP key (`dpop: true`). */
  get dpop() {
    return this.#dpop !== null;
  }

  /** The RFC 7638 thumbprint of the DPoP key (the `cnf.jkt` of bound tokens), or null
   * without `dpop: true`. Creates the key if there is none yet. */
  async getDPoPThumbprint() {
    return this.#dpop ? (await this.#dpopKey()).jkt : null;
  }

  /** Whether this tab holds a session (an access token in memory). */
  get isAuthenticated() {
    return this.#state !== null;
  }

  /**
   * Restore the session on page load: tokens from another tab if one has them, else one
   * refresh with the cookie. Resolves to whether a session exists. Safe to call repeatedly.
   */
  start() {
    if (!this.#started) {
      this.#post({ type: "hello" });
      this.#started = this.#refreshOnce(null).then((state) => state !== null, (error) => {
        this.#started = null;
        throw error;
      });
    }
    return this.#started;
  }

  /** Log in; the service sets the refresh cookie, the access token stays in memory. */
  async login(username, password) {
    return this.#locked(async () => {
      const response = await this.#call("/v1/auth/login", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ username, password }),
      }, {});
      if (response.ok) {
        this.#accept(await jsonBody(response));
        return;
      }
      const body = await jsonBody(response);
      if (response.status === 400) {
        throw new AuthError("invalid_credentials", body.error_description ?? "login refused",
          { status: 400, reason: body.reason });
      }
      throw this.#failure(response, body);
    });
  }

  /** End this session everywhere it is open in this browser (every tab of the origin). */
  async logout() {
    await this.#locked(async () => {
      const state = this.#state;
      let failure = null;
      try {
        const csrf = await this.#currentCsrf();
        const headers = csrf ? { "X-CSRF-Token": csrf } : {};
        const bearer = state && state.expiresAt > this.#now() ? state : null;
        if (bearer || csrf) {
          let response = bearer ? await this.#callWith(bearer, "/v1/auth/logout", { method: "POST", headers })
            : await this.#call("/v1/auth/logout", { method: "POST", headers });
          if (response.status === 401 && bearer && csrf) {
            // the access token is no longer accepted: the cookie and the CSRF token suffice
            response = await this.#call("/v1/auth/logout", { method: "POST", headers });
          }
          if (!response.ok) failure = this.#failure(response, await jsonBody(response));
        }
      } catch (error) {
        failure = error;
      }
      this.#end("logout", true); // whatever the service said, this browser forgets the session
      if (failure) throw failure;
    });
  }

  /** End every session of the user, on every device. */
  async logoutAll() {
    let state = await this.#fresh();
    if (!state) throw new AuthError("login_required", "no session");
    await this.#locked(async () => {
      for (let attempt = 0; ; attempt++) {
        const csrf = await this.#currentCsrf();
        const headers = csrf ? { "X-CSRF-Token": csrf } : {};
        const response = await this.#callWith(state, "/v1/auth/logout-all", { method: "POST", headers });
        if (response.ok) break;
        if (response.status === 401 && attempt === 0) {
          state = await this.#refreshLocked(state);
          if (state) continue;
          throw new AuthError("login_required", "the session has ended", { reason: "no_session" });
        }
        throw this.#failure(response, await jsonBody(response));
      }
      this.#end("logout_all", true);
    });
  }

  /** A valid access token (refreshed first when it expires within the margin). */
  async getAccessToken() {
    const state = await this.#fresh();
    if (!state) throw new AuthError("login_required", "no session");
    return state.accessToken;
  }

  /** Replace the current access token now (another tab's fresh one, or a rotation). */
  async refresh() {
    const state = await this.#refreshOnce(this.#state);
    if (!state) throw new AuthError("login_required", "the session has ended");
  }

  /**
   * `fetch` with `Authorization: Bearer <access token>` (with `dpop: true`: `Authorization:
   * DPoP <access token>` and a fresh `DPoP` proof, retried once with the server's nonce when it
   * asks for one): refreshes ahead of expiry, and on a 401 refreshes and retries once. Only for the service's origin, the page's origin and
   * `apiOrigins` (the token is never sent anywhere else). Cookies are not sent unless
   * `init.credentials` says so: the bearer token is the credential.
   */
  async fetch(input, init = {}) {
    const defaults = input instanceof Request ? {} : { credentials: "omit" };
    const request = new Request(input, { ...defaults, ...init });
    const origin = new URL(request.url).origin;
    if (!this.#apiOrigins.has(origin)) {
      throw new AuthError("origin_not_allowed", `${origin} is not in apiOrigins`);
    }
    const state = await this.#fresh();
    if (!state) throw new AuthError("login_required", "no session");
    const response = await this.#send(request, state);
    if (response.status !== 401) return response;
    const renewed = await this.#refreshOnce(state);
    if (!renewed) throw new AuthError("login_required", "the session has ended");
    return this.#send(request, renewed);
  }

  /** Stop listening to the other tabs (the session itself is untouched). */
  close() {
    this.#channel.close();
    this.#wake();
  }

  // ---- internals ------------------------------------------------------------------------

  /** `request` (a copy of it) with the token of `state`, and a proof for a DPoP token. */
  #send(request, state) {
    if (state.tokenType === "DPoP" && this.#dpop) {
      return this.#withProof(request.method, request.url, state.accessToken,
        (headers) => this.#fetch(withHeaders(request.clone(), headers)));
    }
    return this.#fetch(withHeaders(request.clone(), { Authorization: `Bearer ${state.accessToken}` }));
  }

  /** The DPoP key pair of this service: loaded from IndexedDB, or made and stored there (under
   * a Web Lock, so that the tabs of the origin make one). */
  #dpopKey() {
    const dpop = this.#dpop;
    if (!dpop.key) {
      dpop.key = this.#locks.request(`jwtwarden-dpop ${this.#service}`, { mode: "exclusive" }, async () => {
        let pair = await dpop.store.load(this.#service);
        if (!pair?.privateKey || !pair?.publicKey) {
          // non-extractable: the private key can sign, and never be read, not even by this SDK
          pair = await crypto.subtle.generateKey(DPOP_KEY, false, ["sign"]);
          await dpop.store.save(this.#service, { privateKey: pair.privateKey, publicKey: pair.publicKey });
        }
        return dpopKey(pair);
      }).catch((error) => {
        dpop.key = null;
        throw new AuthError("unsupported", `no DPoP key: ${error?.message ?? error}`, { cause: error });
      });
    }
    return dpop.key;
  }

  /** A fresh proof (RFC 9449 section 4.2) for one request: a random `jti`, `iat` now, `htm`,
   * `htu` without query and fragment, the origin's last nonce, and `ath` with a token. */
  async #proof(method, url, accessToken) {
    const key = await this.#dpopKey();
    const target = new URL(url);
    const claims = {
      jti: b64url(crypto.getRandomValues(new Uint8Array(16))),
      htm: method,
      htu: `${target.origin}${target.pathname}`,
      iat: Math.floor(this.#now() / 1000),
    };
    const nonce = this.#dpop.nonces.get(target.origin);
    if (nonce) claims.nonce = nonce;
    if (accessToken !== undefined) claims.ath = await sha256(accessToken);
    const input = `${key.header}.${b64url(utf8(JSON.stringify(claims)))}`;
    return `${input}.${b64url(await crypto.subtle.sign(DPOP_SIGN, key.privateKey, utf8(input)))}`;
  }

  /** `send(headers)` with a fresh proof (and `Authorization: DPoP` with a token); once more
   * with a new proof when the server asks for a nonce. Every `DPoP-Nonce` is kept per origin. */
  async #withProof(method, url, accessToken, send) {
    const origin = new URL(url).origin;
    for (let attempt = 0; ; attempt++) {
      const headers = { DPoP: await this.#proof(method, url, accessToken) };
      if (accessToken !== undefined) headers.Authorization = `DPoP ${accessToken}`;
      const response = await send(headers);
      const nonce = response.headers.get("DPoP-Nonce");
      if (nonce && NONCE.test(nonce)) this.#dpop.nonces.set(origin, nonce);
      if (attempt > 0 || !(await nonceRequested(response))) return response;
    }
  }

  async #fresh() {
    const state = this.#state;
    if (!state) {
      // no session, unless the restore started on page load is still under way
      if (this.#started) await this.#started.catch(() => false);
      return this.#state;
    }
    if (state.expiresAt - this.#now() > this.#margin) return state;
    try {
      return await this.#refreshOnce(state);
    } catch (error) {
      // refreshing ahead of expiry failed (network, 503): the token is still good for now
      if (this.#state === state && state.expiresAt > this.#now()) return state;
      throw error;
    }
  }

  /** One refresh per tab at a time; callers replacing the same state share it. */
  #refreshOnce(stale) {
    if (!this.#inflight) {
      this.#inflight = this.#locked(() => this.#refreshLocked(stale)).finally(() => {
        this.#inflight = null;
      });
    }
    return this.#inflight;
  }

  #locked(work) {
    return this.#locks.request(this.#lockName, { mode: "exclusive" }, work);
  }

  /** Under the lock: replace `stale` (null: restore) with a current state, or end the session. */
  async #refreshLocked(stale) {
    const csrf = await this.#currentCsrf();
    if (csrf === null) {
      if (stale || this.#state) this.#end("no_session", true);
      return null;
    }
    const current = this.#state;
    if (current && current !== stale && current.csrfToken === csrf) return current;
    if (stale && csrf !== stale.csrfToken) {
      // Another tab rotated after this one decided to; its tokens are on their way (and if
      // this tab slept through that message, an open tab answers this hello with them).
      this.#post({ type: "hello" });
      const endedAt = this.#endedAt;
      const handed = await this.#stateWithCsrf(csrf);
      if (handed) return handed;
      if (this.#endedAt !== endedAt) return null; // the session ended meanwhile
    }
    return this.#rotate(csrf);
  }

  async #rotate(csrf) {
    const response = await this.#call("/v1/auth/refresh", {
      method: "POST", headers: { "X-CSRF-Token": csrf },
    }, {});
    const body = await jsonBody(response);
    if (response.ok) return this.#accept(body);
    if (response.status === 400) {
      const reason = ENDING_REASONS.has(body.reason) ? body.reason : "no_session";
      this.#end(reason, true);
      return null;
    }
    throw this.#failure(response, body);
  }

  /** The session's CSRF token from the service, or null when there is no session cookie. */
  async #currentCsrf() {
    const response = await this.#call("/v1/auth/csrf", { method: "GET" });
    const body = await jsonBody(response);
    if (response.ok) {
      if (typeof body.csrf_token !== "string") throw new AuthError("protocol", "no csrf_token");
      return body.csrf_token;
    }
    if (response.status === 400) return null;
    throw this.#failure(response, body);
  }

  /** A call to the service. `proof` (with `dpop: true`): send a DPoP proof, for `proof.token`
   * when given (as `Authorization: DPoP`). */
  async #call(path, init, proof = null) {
    const url = new URL(path, this.#service);
    const send = async (headers) => {
      try {
        return await this.#fetch(url, {
          ...init,
          headers: { ...init.headers, ...headers },
          credentials: "include", // the refresh and CSRF cookies of the service
          mode: "cors",
          cache: "no-store",
          redirect: "error",
          signal: AbortSignal.timeout(this.#timeout),
        });
      } catch (error) {
        throw new AuthError("network", `cannot reach the token service: ${error?.message ?? error}`,
          { cause: error });
      }
    };
    if (proof === null || !this.#dpop) return send({});
    return this.#withProof(init.method, url, proof.token, send);
  }

  /** A call to the service with the access token of `state`. */
  #callWith(state, path, init) {
    if (state.tokenType === "DPoP" && this.#dpop) return this.#call(path, init, { token: state.accessToken });
    return this.#call(path, { ...init, headers: { ...init.headers, Authorization: `Bearer ${state.accessToken}` } });
  }

  #failure(response, body) {
    const description = body.error_description ?? `HTTP ${response.status}`;
    const retry = Number.parseInt(response.headers.get("Retry-After") ?? "", 10);
    const details = { status: response.status, reason: body.reason,
      retryAfter: Number.isFinite(retry) ? retry : undefined };
    if (response.status === 403) return new AuthError("forbidden", description, details);
    if (response.status === 429) return new AuthError("rate_limited", description, details);
    if (response.status === 503) return new AuthError("unavailable", description, details);
    return new AuthError("protocol", description, details);
  }

  /** A token answer from the service: keep it in memory and hand it to the other tabs. */
  #accept(body) {
    if (typeof body?.refresh_token === "string") {
      // The refresh token came in the body: the service is not in cookie mode. Drop it.
      throw new AuthError("misconfigured",
        "the token service is not in cookie mode (JWTWARDEN_COOKIE_MODE=1)");
    }
    if (typeof body.access_token !== "string" || typeof body.csrf_token !== "string"
        || !Number.isFinite(body.expires_in)) {
      throw new AuthError("protocol", "unexpected token answer");
    }
    const now = this.#now();
    const state = {
      accessToken: body.access_token,
      expiresAt: now + 1000 * body.expires_in,
      csrfToken: body.csrf_token,
      tokenType: body.token_type === "DPoP" ? "DPoP" : "Bearer",
      issuedAt: Math.max(now, (this.#state?.issuedAt ?? 0) + 1, this.#endedAt + 1),
    };
    this.#adopt(state);
    this.#post({ type: "state", ...state });
    return state;
  }

  #adopt(state) {
    if (state.issuedAt <= (this.#state?.issuedAt ?? 0) || state.issuedAt <= this.#endedAt) return;
    const had = this.#state !== null;
    this.#state = Object.freeze({ ...state });
    this.#wake();
    if (!had) this.dispatchEvent(new Event("login"));
  }

  #end(reason, announce) {
    const at = Math.max(this.#now(), this.#endedAt, this.#state?.issuedAt ?? 0);
    this.#endOn(reason, at);
    if (announce) this.#post({ type: "ended", reason, at });
  }

  #endOn(reason, at) {
    this.#endedAt = Math.max(this.#endedAt, at);
    if (this.#state && this.#state.issuedAt > at) return; // a newer session (a later login)
    const had = this.#state !== null;
    this.#state = null;
    this.#wake();
    if (had) this.dispatchEvent(new CustomEvent("sessionended", { detail: { reason } }));
  }

  #onMessage(message) {
    if (message === null || typeof message !== "object") return;
    if (message.type === "hello") {
      if (this.#state) this.#post({ type: "state", ...this.#state });
    } else if (message.type === "state" && validState(message)) {
      const { accessToken, expiresAt, csrfToken, issuedAt, tokenType } = message;
      this.#adopt({ accessToken, expiresAt, csrfToken, issuedAt, tokenType });
    } else if (message.type === "ended" && typeof message.reason === "string"
               && Number.isFinite(message.at)) {
      this.#endOn(message.reason, message.at);
    }
  }

  #post(message) {
    try {
      this.#channel.postMessage(message);
    } catch {
      // a closed channel: this client is being disposed of
    }
  }

  #wake() {
    for (const wake of this.#waiters) wake();
  }

  /** The state whose CSRF token is `csrf`, if another tab hands it over in time (null if the
   * session ends first, or on timeout). */
  #stateWithCsrf(csrf) {
    const endedAt = this.#endedAt;
    return new Promise((resolve) => {
      let timer;
      const check = () => {
        if (this.#state?.csrfToken === csrf) done(this.#state);
        else if (this.#endedAt !== endedAt) done(null);
      };
      const done = (value) => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve(value);
      };
      timer = setTimeout(() => done(null), this.#handoverTimeout);
      this.#waiters.add(check);
      check();
    });
  }
}

/** `new JwtwardenClient(options)`. */
export function createClient(options) {
  return new JwtwardenClient(options);
}
