/**
 * jwtwarden in the browser. The refresh token lives only in the service's HttpOnly cookie,
 * the access token only in memory; one refresh at a time across every tab of the origin.
 */

/** Stable codes of {@link AuthError}. */
export type AuthErrorCode =
  /** No session, or it has ended (a `sessionended` event says why). */
  | "login_required"
  /** The username or password was refused (`reason` from the service). */
  | "invalid_credentials"
  /** Too many failed logins; see `retryAfter`. */
  | "rate_limited"
  /** The service refused the Origin or the CSRF proof (a configuration problem: see the README). */
  | "forbidden"
  /** The service answered 503; see `retryAfter`. */
  | "unavailable"
  /** The service could not be reached (network error or the SDK's request timeout). */
  | "network"
  /** An answer the SDK does not understand. */
  | "protocol"
  /** The service is not in cookie mode: it sent the refresh token in the body (dropped). */
  | "misconfigured"
  /** `client.fetch` to an origin that is not the service's, the page's or in `apiOrigins`. */
  | "origin_not_allowed"
  /** Web Locks, BroadcastChannel or fetch missing (Web Locks need https or localhost); with
   * `dpop: true`, WebCrypto or IndexedDB missing or failing. */
  | "unsupported";

export class AuthError extends Error {
  constructor(
    code: AuthErrorCode,
    message: string,
    details?: { status?: number; reason?: string; retryAfter?: number; cause?: unknown },
  );
  readonly name: "AuthError";
  readonly code: AuthErrorCode;
  /** The HTTP status of the service's answer, when there was one. */
  readonly status: number | undefined;
  /** jwtwarden's `reason` code, e.g. `invalid_credentials`, `csrf`, `rate_limited`. */
  readonly reason: string | undefined;
  /** Seconds from `Retry-After`, for `rate_limited` and `unavailable`. */
  readonly retryAfter: number | undefined;
}

/** Why a session ended, in `sessionended` events. */
export type SessionEndReason =
  | "logout"
  | "logout_all"
  | "refresh_reused"
  | "refresh_revoked"
  | "refresh_expired"
  | "family_too_old"
  | "invalid_refresh_token"
  /** The session cookie is gone (cleared by the service or the user). */
  | "no_session"
  | (string & {});

export interface SessionEndedEvent extends CustomEvent<{ reason: SessionEndReason }> {
  readonly type: "sessionended";
}

/** The subset of `navigator.locks` the client uses (tests may pass their own). */
export interface LockManagerLike {
  request<T>(name: string, options: { mode: "exclusive" }, callback: () => Promise<T>): Promise<T>;
}

/** Where DPoP key pairs are kept (default: IndexedDB, database `jwtwarden-dpop`). */
export interface DPoPKeyStore {
  load(name: string): Promise<{ privateKey: CryptoKey; publicKey: CryptoKey } | undefined>;
  save(name: string, pair: { privateKey: CryptoKey; publicKey: CryptoKey }): Promise<unknown>;
}

export interface ClientOptions {
  /** The token service, e.g. `https://auth.example.com` (https; http only on localhost). */
  serviceUrl: string;
  /**
   * Origins besides the service's and the page's own that `client.fetch` may send the access
   * token to, e.g. `["https://api.example.com"]`. Any other origin is refused.
   */
  apiOrigins?: readonly string[];
  /** Seconds before expiry at which the access token is refreshed (default 60). */
  refreshMargin?: number;
  /** Timeout of the SDK's own requests to the service, in ms (default 10000). */
  requestTimeout?: number;
  /** How long a tab waits for another tab's freshly rotated tokens before rotating itself, in ms (default 3000). */
  handoverTimeout?: number;
  /**
   * DPoP (RFC 9449): bind the tokens to a non-extractable P-256 key made with WebCrypto and kept
   * in IndexedDB, and send a fresh proof with every login, refresh and call with the token
   * (`Authorization: DPoP`). Default false.
   */
  dpop?: boolean;
  /** For tests: where the DPoP key is kept instead of IndexedDB. */
  dpopKeyStore?: DPoPKeyStore;
  /** For tests: replacements of the browser's globals. */
  fetch?: typeof globalThis.fetch;
  locks?: LockManagerLike;
  BroadcastChannel?: new (name: string) => BroadcastChannel;
  /** For tests: the clock, in ms since the epoch (default `Date.now`). */
  now?: () => number;
}

export interface JwtwardenClientEventMap {
  /** This tab has a session: its own login, a restored one, or another tab's login. */
  login: Event;
  /** The session ended (in this tab or any other); once per tab per session. */
  sessionended: SessionEndedEvent;
}

export class JwtwardenClient extends EventTarget {
  constructor(options: ClientOptions);

  /** The Web Lock every tab takes to refresh, log in or log out. */
  readonly lockName: string;
  /** Whether this tab holds a session. */
  readonly isAuthenticated: boolean;
  /** Whether tokens are bound to this browser's DPoP key (`dpop: true`). */
  readonly dpop: boolean;

  /** The RFC 7638 thumbprint of the DPoP key (the `cnf.jkt` of bound tokens; the key is made
   * if there is none yet), or null without `dpop: true`. */
  getDPoPThumbprint(): Promise<string | null>;

  /** Restore the session on page load (another tab's tokens, or one refresh with the cookie). */
  start(): Promise<boolean>;
  /** Log in. Rejects with `invalid_credentials`, `rate_limited`, `forbidden`, ... */
  login(username: string, password: string): Promise<void>;
  /** End this session in every tab (the local state is dropped even when the call fails). */
  logout(): Promise<void>;
  /** End every session of the user, on every device. */
  logoutAll(): Promise<void>;
  /** A valid access token, refreshed first when it is about to expire. */
  getAccessToken(): Promise<string>;
  /** Replace the current access token now. */
  refresh(): Promise<void>;
  /** `fetch` with the access token (`Bearer`, or `DPoP` with a fresh proof, once more with the
   * server's nonce when it asks): refreshes ahead of expiry, retries once after a 401. */
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
  /** Stop listening to the other tabs. */
  close(): void;

  addEventListener<K extends keyof JwtwardenClientEventMap>(
    type: K,
    listener: (this: JwtwardenClient, event: JwtwardenClientEventMap[K]) => unknown,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  removeEventListener<K extends keyof JwtwardenClientEventMap>(
    type: K,
    listener: (this: JwtwardenClient, event: JwtwardenClientEventMap[K]) => unknown,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
}

/** `new JwtwardenClient(options)`. */
export function createClient(options: ClientOptions): JwtwardenClient;
