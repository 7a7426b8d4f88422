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
 * No runtime dependencies; ES2022; TypeScript types in index.d.ts.
 */

const REFRESH_MARGIN = 60; // seconds before expiry at which the access token is refreshed
const REQUEST_TIMEOUT = 10_000; // ms, for the SDK's own calls to the service
const HANDOVER_TIMEOUT = 3_000; // ms to wait for another tab's rotated tokens before rotating
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
    && Number.isFinite(message.expiresAt) && Number.isFinite(message.issuedAt);
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
  #state = null; // {accessToken, expiresAt, csrfToken, issuedAt}: memory only
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
    this.#channel = new Channel(`jwtwarden ${this.#service}`);
    this.#channel.onmessage = (event) => this.#onMessage(event.data);
  }

  /** The Web Lock every tab takes to refresh, log in or log out. */
  get lockName() {
    return this.#lockName;
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
      });
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
        const bearer = state && state.expiresAt > this.#now() ? state.accessToken : null;
        if (bearer || csrf) {
          let response = await this.#call("/v1/auth/logout", {
            method: "POST", headers: bearer ? { ...headers, Authorization: `Bearer ${bearer}` } : headers,
          });
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
        const headers = { Authorization: `Bearer ${state.accessToken}` };
        if (csrf) headers["X-CSRF-Token"] = csrf;
        const response = await this.#call("/v1/auth/logout-all", { method: "POST", headers });
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
   * `fetch` with `Authorization: Bearer <access token>`: refreshes ahead of expiry, and on a
   * 401 refreshes and retries once. Only for the service's origin, the page's origin and
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
    const response = await this.#fetch(this.#withToken(request.clone(), state.accessToken));
    if (response.status !== 401) return response;
    const renewed = await this.#refreshOnce(state);
    if (!renewed) throw new AuthError("login_required", "the session has ended");
    return this.#fetch(this.#withToken(request, renewed.accessToken));
  }

  /** Stop listening to the other tabs (the session itself is untouched). */
  close() {
    this.#channel.close();
    this.#wake();
  }

  // ---- internals ------------------------------------------------------------------------

  #withToken(request, token) {
    const headers = new Headers(request.headers);
    headers.set("Authorization", `Bearer ${token}`);
    return new Request(request, { headers });
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
    });
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

  async #call(path, init) {
    try {
      return await this.#fetch(new URL(path, this.#service), {
        ...init,
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
      const { accessToken, expiresAt, csrfToken, issuedAt } = message;
      this.#adopt({ accessToken, expiresAt, csrfToken, issuedAt });
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
