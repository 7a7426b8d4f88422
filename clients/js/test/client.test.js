// Unit tests of the browser SDK with node's own test runner: `node --test clients/js/test/`.
// Each "tab" is one client; the tabs of a test share one fake service (and its cookie jar),
// one lock manager and node's real BroadcastChannel.

import assert from "node:assert/strict";
import { once } from "node:events";
import { afterEach, beforeEach, describe, mock, test } from "node:test";

import { AuthError, JwtwardenClient, createClient } from "../src/index.js";
import {
  API, FakeLocks, FakeService, NoLocks, PASSWORD, SERVICE, fakeClock, heldChannel, settle,
} from "./fakes.js";

let clients = [];
let service;
let locks;
let clock;

function tab(options = {}) {
  const client = createClient({
    serviceUrl: SERVICE, apiOrigins: [API], fetch: (...args) => service.fetch(...args), locks, now: clock,
    handoverTimeout: 2000, ...options,
  });
  clients.push(client);
  return client;
}

function events(client) {
  const seen = [];
  client.addEventListener("login", () => seen.push("login"));
  client.addEventListener("sessionended", (e) => seen.push(`ended:${e.detail.reason}`));
  return seen;
}

const hello = (client) => client.fetch(`${API}/hello`);

beforeEach(() => {
  clock = fakeClock();
  service = new FakeService({ now: clock });
  locks = new FakeLocks();
});

afterEach(() => {
  for (const client of clients) client.close();
  clients = [];
});

describe("storage", () => {
  test("the SDK never touches localStorage, sessionStorage, IndexedDB or document.cookie", async () => {
    const forbidden = ["localStorage", "sessionStorage", "indexedDB", "document", "caches"];
    const touched = [];
    for (const name of forbidden) {
      Object.defineProperty(globalThis, name, {
        configurable: true, get() { touched.push(name); throw new Error(`${name} touched`); },
      });
    }
    try {
      const a = tab();
      await a.login("alice", PASSWORD);
      clock.advance(850);
      assert.equal((await hello(a)).status, 200);
      const b = tab();
      assert.equal(await b.start(), true);
      await a.logout();
    } finally {
      for (const name of forbidden) delete globalThis[name];
    }
    assert.deepEqual(touched, []);
  });

  test("a service that sends the refresh token in the body is refused and nothing is kept", async () => {
    service.bodyRefreshToken = true;
    const a = tab();
    await assert.rejects(a.login("alice", PASSWORD), { code: "misconfigured" });
    assert.equal(a.isAuthenticated, false);
    await assert.rejects(a.getAccessToken(), { code: "login_required" });
  });
});

describe("login and calls", () => {
  test("login keeps the access token in memory and fetch sends it as a bearer token, without cookies", async () => {
    const a = tab();
    const seen = events(a);
    await a.login("alice", PASSWORD);
    const response = await hello(a);
    assert.equal(response.status, 200);
    const call = service.log.at(-1);
    assert.equal(call.origin, API);
    assert.match(call.authorization, /^Bearer at_/);
    assert.equal(call.credentials, "omit");
    assert.deepEqual(seen, ["login"]);
  });

  test("a wrong password is an invalid_credentials error with the service's reason", async () => {
    const a = tab();
    const error = await a.login("alice", "nope").catch((e) => e);
    assert.ok(error instanceof AuthError);
    assert.equal(error.code, "invalid_credentials");
    assert.equal(error.reason, "invalid_credentials");
    assert.equal(a.isAuthenticated, false);
  });

  test("the token is never sent to an origin that is not listed", async () => {
    const a = tab();
    await a.login("alice", PASSWORD);
    const before = service.log.length;
    await assert.rejects(a.fetch("https://evil.example/steal"), { code: "origin_not_allowed" });
    assert.equal(service.log.length, before);
  });

  test("without a session, fetch asks for a login and sends nothing", async () => {
    const a = tab();
    assert.equal(await a.start(), false);
    const before = service.log.length;
    await assert.rejects(hello(a), { code: "login_required" });
    assert.equal(service.log.length, before);
  });

  test("every call that carries the service's cookies sends the session's CSRF token", async () => {
    const a = tab();
    await a.login("alice", PASSWORD);
    await a.refresh();
    await a.logout();
    const b = tab();
    await b.login("alice", PASSWORD);
    await b.logoutAll();
    const stateChanging = service.log.filter((c) => c.method === "POST" && c.cookies.refresh);
    assert.ok(stateChanging.length >= 3);
    for (const call of stateChanging) {
      assert.equal(call.credentials, "include");
      assert.equal(call.csrf, call.cookies.csrf, `${call.path} without the CSRF token`);
    }
  });

  test("the constructor refuses plain http off loopback and a browser without Web Locks", () => {
    assert.throws(() => new JwtwardenClient({ serviceUrl: "http://auth.example.com", fetch: service.fetch, locks }),
      TypeError);
    assert.throws(() => new JwtwardenClient({ serviceUrl: SERVICE, fetch: service.fetch }),
      { code: "unsupported" });
    assert.throws(() => tab({ apiOrigins: ["http://api.example.com"] }), TypeError);
  });
});

describe("refreshing", () => {
  test("the access token is refreshed ahead of its expiry, not before the margin", async () => {
    const a = tab({ refreshMargin: 60 });
    await a.login("alice", PASSWORD);
    const first = await a.getAccessToken();
    clock.advance(900 - 61);
    assert.equal(await a.getAccessToken(), first);
    assert.equal(service.rotations, 0);
    clock.advance(2);
    const second = await a.getAccessToken();
    assert.notEqual(second, first);
    assert.equal(service.rotations, 1);
  });

  test("a 401 refreshes and retries once; a second 401 is returned as it is", async () => {
    const a = tab();
    await a.login("alice", PASSWORD);
    service.revokeAccess(await a.getAccessToken());
    assert.equal((await hello(a)).status, 200);
    assert.equal(service.rotations, 1);
    const realFetch = service.fetch;
    let apiCalls = 0;
    service.fetch = async (input, init) => {
      const request = new Request(input, init);
      if (new URL(request.url).origin === API) {
        apiCalls += 1;
        return new Response(null, { status: 401 });
      }
      return realFetch(request);
    };
    const b = tab();
    await b.start();
    const before = service.rotations;
    assert.equal((await hello(b)).status, 401);
    assert.equal(apiCalls, 2);
    assert.equal(service.rotations, before + 1);
  });

  test("a request body survives the retry after a 401", async () => {
    const a = tab();
    await a.login("alice", PASSWORD);
    const bodies = [];
    const realFetch = service.fetch;
    service.fetch = async (input, init) => {
      const request = new Request(input, init);
      if (new URL(request.url).origin !== API) return realFetch(request);
      bodies.push(await request.text());
      return new Response(null, { status: bodies.length === 1 ? 401 : 200 });
    };
    const response = await a.fetch(`${API}/items`, { method: "POST", body: "{\"n\":1}" });
    assert.equal(response.status, 200);
    assert.deepEqual(bodies, ["{\"n\":1}", "{\"n\":1}"]);
  });

  test("calls of one tab needing a refresh at once share one rotation", async () => {
    const a = tab();
    await a.login("alice", PASSWORD);
    clock.advance(890);
    const answers = await Promise.all([hello(a), hello(a), hello(a), a.getAccessToken()]);
    assert.deepEqual(answers.slice(0, 3).map((r) => r.status), [200, 200, 200]);
    assert.equal(service.rotations, 1);
  });

  test("when refreshing ahead of expiry fails, the still valid token is used", async () => {
    const a = tab();
    await a.login("alice", PASSWORD);
    const token = await a.getAccessToken();
    clock.advance(870);
    service.down = true;
    assert.equal(await a.getAccessToken(), token);
    clock.advance(40);
    await assert.rejects(a.getAccessToken(), { code: "network" });
    assert.equal(a.isAuthenticated, true);
  });
});

describe("two tabs", () => {
  async function racing(channel) {
    const opts = channel ? { BroadcastChannel: channel.Channel } : {};
    const a = tab(opts);
    const b = tab(opts);
    await a.login("alice", PASSWORD);
    await settle();
    assert.equal(b.isAuthenticated, true, "tab b got the login of tab a");
    clock.advance(890);
    return { a, b };
  }

  test("racing a refresh: one rotation, no revocation, the same token in both", async () => {
    const { a, b } = await racing();
    const [ra, rb] = await Promise.all([hello(a), hello(b)]);
    assert.deepEqual([ra.status, rb.status], [200, 200]);
    assert.equal(service.rotations, 1);
    assert.deepEqual(service.revoked, []);
    assert.equal(await a.getAccessToken(), await b.getAccessToken());
  });

  test("racing when the lock arrives before the other tab's message: it waits for the handover", async () => {
    const channel = heldChannel();
    const { a, b } = await racing(channel);
    channel.hold();
    const pa = a.getAccessToken();
    const pb = b.getAccessToken();
    while (service.rotations === 0 || locks.pending > 0) await settle(1);
    await settle(); // tab b now holds the lock and has seen a new CSRF token, but no message
    channel.release();
    const [ta, tb] = await Promise.all([pa, pb]);
    assert.equal(ta, tb);
    assert.equal(service.rotations, 1);
    assert.deepEqual(service.revoked, []);
  });

  test("a lost handover costs a second rotation, never a revocation", async () => {
    const channel = heldChannel();
    const { a, b } = await racing(channel);
    channel.drop();
    let ta;
    let tb;
    mock.timers.enable({ apis: ["setTimeout"] });
    try {
      const pa = a.getAccessToken();
      const pb = b.getAccessToken();
      while (service.rotations === 0 || locks.pending > 0) await settle(1);
      await settle(); // tab b waits for a handover that will never come
      assert.equal(service.rotations, 1);
      mock.timers.tick(2000);
      [ta, tb] = await Promise.all([pa, pb]);
    } finally {
      mock.timers.reset();
    }
    assert.notEqual(ta, tb);
    assert.equal(service.rotations, 2);
    assert.deepEqual(service.revoked, []);
  });

  test("a tab that slept through a rotation asks the open tabs instead of rotating again", async () => {
    const channel = heldChannel();
    const a = tab({ BroadcastChannel: channel.Channel });
    const b = tab();
    await a.login("alice", PASSWORD);
    await settle();
    clock.advance(890);
    channel.drop(); // b never hears of a's rotation
    await a.refresh();
    channel.resume();
    assert.equal(await b.getAccessToken(), await a.getAccessToken());
    assert.equal(service.rotations, 1);
  });

  test("without the lock the same race presents one refresh token twice and the session is revoked", async () => {
    locks = new NoLocks(); // what the Web Lock prevents
    const { a, b } = await racing();
    await Promise.allSettled([hello(a), hello(b)]);
    assert.deepEqual(service.revoked, ["reuse"]);
  });

  test("a new tab takes the session of an open one", async () => {
    const a = tab();
    await a.login("alice", PASSWORD);
    const b = tab();
    const seen = events(b);
    assert.equal(await b.start(), true);
    assert.equal(await b.getAccessToken(), await a.getAccessToken());
    assert.ok(service.rotations <= 1);
    assert.deepEqual(service.revoked, []);
    assert.deepEqual(seen, ["login"]);
  });

  test("a page load restores the session from the cookie alone", async () => {
    const a = tab();
    await a.login("alice", PASSWORD);
    a.close(); // the tab is reloaded: its memory is gone
    const reloaded = tab();
    assert.equal(await reloaded.start(), true);
    assert.equal((await hello(reloaded)).status, 200);
    assert.equal(service.rotations, 1);
  });

  test("logout in one tab ends the other with one event each", async () => {
    const a = tab();
    const b = tab();
    const seenA = events(a);
    const seenB = events(b);
    await a.login("alice", PASSWORD);
    await settle();
    const ended = once(b, "sessionended");
    await a.logout();
    await ended;
    await settle();
    assert.deepEqual(seenA, ["login", "ended:logout"]);
    assert.deepEqual(seenB, ["login", "ended:logout"]);
    await assert.rejects(hello(b), { code: "login_required" });
    assert.deepEqual(service.revoked, ["logout"]);
  });

  test("reuse detected by one tab reaches every tab as one event", async () => {
    const a = tab();
    const b = tab();
    const seenA = events(a);
    const seenB = events(b);
    await a.login("alice", PASSWORD);
    const stolen = service.jar.refresh;
    await a.refresh(); // the user's tab rotates; the thief replays the old token
    assert.equal(service.replay(stolen), "refresh_reused");
    await settle();
    const ended = once(b, "sessionended");
    await assert.rejects(hello(a), { code: "login_required" });
    await ended;
    await settle();
    // a: 401 (access token revoked with the family) -> refresh -> refresh_revoked
    assert.deepEqual(seenA, ["login", "ended:refresh_revoked"]);
    assert.deepEqual(seenB, ["login", "ended:refresh_revoked"]);
  });

  test("a message about an older session does not end a newer one", async () => {
    const channel = heldChannel();
    const a = tab({ BroadcastChannel: channel.Channel });
    const b = tab({ BroadcastChannel: channel.Channel });
    await a.login("alice", PASSWORD);
    await settle();
    channel.hold();
    await a.logout(); // "ended" is held back
    clock.advance(1);
    await b.login("alice", PASSWORD);
    channel.release(); // b now hears of a's older session ending
    await settle();
    assert.equal(b.isAuthenticated, true);
    assert.equal((await hello(b)).status, 200);
  });

  test("logout everywhere ends the session in every tab", async () => {
    const a = tab();
    const b = tab();
    const seenB = events(b);
    await a.login("alice", PASSWORD);
    await settle();
    const ended = once(b, "sessionended");
    await a.logoutAll();
    await ended;
    assert.deepEqual(seenB, ["login", "ended:logout_all"]);
    assert.deepEqual(service.revoked, ["logout_all"]);
  });

  test("logout still ends the local session when the service cannot be reached", async () => {
    const a = tab();
    await a.login("alice", PASSWORD);
    service.down = true;
    await assert.rejects(a.logout(), { code: "network" });
    assert.equal(a.isAuthenticated, false);
  });
});
