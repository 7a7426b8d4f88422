// The example single-page app: log in, show who is signed in, call a resource server.
// Everything about tokens is the SDK's business; this file only draws the page.
import { createClient } from "/sdk/index.js";

const config = await (await fetch("/config.json")).json();
const client = createClient({
  serviceUrl: config.serviceUrl,
  apiOrigins: [new URL(config.apiUrl).origin], // the only other origin that may see the token
  dpop: config.dpop, // serve.py --dpop: tokens bound to a key kept in IndexedDB (RFC 9449)
});
window.jwtwardenDemo = { client }; // for the console and the browser tests; a real app needn't

const $ = (id) => document.getElementById(id);

function note(text) {
  const item = document.createElement("li");
  item.textContent = text;
  $("events").append(item);
}

function describe(error) {
  return error?.code ? `${error.code}: ${error.message}` : String(error);
}

async function showSession() {
  $("login-form").hidden = true;
  $("session").hidden = false;
  $("status").textContent = "signed in";
  try {
    const answer = await client.fetch(`${config.serviceUrl}/v1/auth/userinfo`);
    const claims = await answer.json();
    $("who").textContent = answer.ok ? claims.sub : "";
  } catch (error) {
    $("status").textContent = describe(error);
  }
}

function showLogin(why) {
  $("session").hidden = true;
  $("login-form").hidden = false;
  $("who").textContent = "";
  $("result").textContent = "";
  $("status").textContent = why ? `signed out (${why})` : "signed out";
}

client.addEventListener("login", () => {
  note("login");
  showSession();
});
client.addEventListener("sessionended", (event) => {
  note(`sessionended: ${event.detail.reason}`);
  showLogin(event.detail.reason);
});

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("status").textContent = "logging in…";
  try {
    await client.login($("username").value, $("password").value);
    $("password").value = "";
  } catch (error) {
    $("status").textContent = describe(error);
  }
});

$("logout").addEventListener("click", async () => {
  try {
    await client.logout();
  } catch (error) {
    $("status").textContent = describe(error);
  }
});

$("call").addEventListener("click", async () => {
  $("result").textContent = "…";
  try {
    const answer = await client.fetch(`${config.apiUrl}/hello`);
    $("result").textContent = `${answer.status} ${await answer.text()}`;
  } catch (error) {
    $("result").textContent = describe(error);
  }
});

try {
  if (!(await client.start())) showLogin();
} catch (error) {
  showLogin();
  $("status").textContent = describe(error);
}
