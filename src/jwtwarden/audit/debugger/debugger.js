/*
 * jwtwarden token debugger: the page's behaviour. The checks live in audit.js.
 *
 * Privacy rules this file keeps (a test in Chromium checks them):
 * - the token is never put in a request, the URL, a cookie or any storage;
 * - the only request this script makes is a GET of the service's public JWKS, without a body;
 * - token content is only ever written with textContent/append (never as HTML).
 */
(function () {
  "use strict";

  const A = globalThis.JwtwardenAudit;
  const $ = (id) => document.getElementById(id);
  const jwksPath = (document.querySelector('meta[name="jwtwarden-jwks"]') || {}).content || "";
  const state = { token: "", report: null, verification: null, keyError: null, proof: null };

  function el(tag, className, ...children) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    node.append(...children);
    return node;
  }

  function relative(seconds) {
    if (Math.abs(seconds) < 1) return "now";
    return seconds > 0 ? `in ${A.formatDuration(seconds)}` : `${A.formatDuration(-seconds)} ago`;
  }

  function headerAlg(report) {
    const alg = report && report.header ? report.header.get("alg") : undefined;
    return typeof alg === "string" ? alg : "?";
  }

  function renderColored(token) {
    const pre = $("colored");
    const classes = ["seg-header", "seg-payload", "seg-signature"];
    const nodes = [];
    token.split(".").forEach((segment, i) => {
      if (i) nodes.push(el("span", "seg-dot", "."));
      nodes.push(el("span", classes[i] || "seg-extra", segment));
    });
    pre.replaceChildren(...nodes);
  }

  function renderBanner() {
    const banner = $("banner");
    const v = state.verification;
    if (!state.token) {
      banner.dataset.state = "empty";
      banner.textContent = "Paste a token to inspect it.";
    } else if (v === null) {
      banner.dataset.state = "unverified";
      banner.textContent =
        "UNVERIFIED: no key has checked this token. Anyone can write this header and payload; nothing below is trusted.";
    } else if (v.verified) {
      banner.dataset.state = "verified";
      banner.textContent = `VERIFIED with key ${v.kid} (${v.alg}).`;
    } else {
      banner.dataset.state = "failed";
      banner.textContent = `VERIFICATION FAILED: ${v.code} (${v.error}): ${v.message}`;
    }
  }

  function renderFindings(findings) {
    const list = $("findings");
    const items = findings.map((f) => {
      const item = el(
        "li",
        `finding finding-${f.severity}`,
        el("span", `sev sev-${f.severity}`, f.severity.toUpperCase()),
        " ",
        el("code", "", f.code),
        " ",
        el("span", "where", `${f.part} ${f.path}`.trim()),
        el("p", "msg", f.message),
        el("p", "fix", `Fix: ${f.fix}`),
      );
      item.dataset.code = f.code;
      item.dataset.severity = f.severity;
      return item;
    });
    list.replaceChildren(...items);
    const summary = $("findings-summary");
    if (!findings.length) {
      summary.textContent = "No findings.";
    } else {
      const order = A.tables.severities;
      const worst = findings.reduce((w, f) => (order.indexOf(f.severity) > order.indexOf(w) ? f.severity : w), "info");
      summary.textContent = `${findings.length} finding${findings.length === 1 ? "" : "s"}; the worst is ${worst.toUpperCase()}.`;
    }
  }

  function renderTimes(times) {
    const rows = times.map((t) =>
      el("tr", "", el("td", "", t.name), el("td", "", t.iso || "out of range"), el("td", "", relative(t.relative))),
    );
    $("times-body").replaceChildren(...rows);
    $("times").hidden = !times.length;
  }

  function dpopRow(name, value, code) {
    const row = el("tr", "", el("th", "", name), el("td", "", value === null ? "(absent)" : value));
    if (code) row.dataset.field = code;
    return row;
  }

  /** A DPoP proof's fields and its key's thumbprint, or what a bound token is bound to. */
  function renderDpop() {
    const report = state.report;
    const proof = state.proof;
    const jkt = report ? A.dpopJkt(report.payload) : null;
    const box = $("dpop");
    box.hidden = !report || (proof === null && jkt === null);
    if (box.hidden) return;
    const rows = [];
    if (proof !== null) {
      box.dataset.kind = "proof";
      $("dpop-summary").textContent =
        "A DPoP proof: the client signs one for every request with the key in its jwk header. That key " +
        "proves nothing by itself: a server trusts it only if its thumbprint equals the access token's " +
        "cnf.jkt. Decoded, not verified.";
      const iat = proof.iat === null ? null
        : `${proof.iat} (${proof.age === null ? "" : relative(-proof.age)})`;
      rows.push(
        dpopRow("alg", proof.alg, "alg"),
        dpopRow("htm (method)", proof.htm, "htm"),
        dpopRow("htu (URL)", proof.htu, "htu"),
        dpopRow("iat (issued)", iat, "iat"),
        dpopRow("jti (unique id)", proof.jti, "jti"),
        dpopRow("ath (access token hash)", proof.ath, "ath"),
        dpopRow("nonce (server nonce)", proof.nonce, "nonce"),
        dpopRow("jwk thumbprint (cnf.jkt to match)", proof.jkt === null ? `(${proof.keyProblem})` : proof.jkt, "jkt"),
      );
      if (proof.privateMembers.length) {
        rows.push(dpopRow("PRIVATE KEY in jwk", `members ${proof.privateMembers.join(", ")}: ` +
          "this key is compromised; servers must refuse the proof", "private"));
      }
    } else {
      box.dataset.kind = "bound";
      $("dpop-summary").textContent =
        "This token is DPoP-bound: servers accept it only as Authorization: DPoP, with a fresh proof " +
        "signed by the key whose thumbprint is cnf.jkt. A copy of the token alone is refused.";
      rows.push(dpopRow("cnf.jkt (key thumbprint)", jkt, "cnf-jkt"));
    }
    $("dpop-body").replaceChildren(...rows);
  }

  function render() {
    const report = state.report;
    renderBanner();
    if (!state.token || report === null) {
      $("colored").replaceChildren();
      $("decoded").hidden = true;
      $("findings-section").hidden = true;
      return;
    }
    renderColored(state.token);
    $("decoded").hidden = false;
    $("findings-section").hidden = false;
    $("header").textContent = report.header ? A.toJsonText(report.header) : "(could not be decoded)";
    const masked = $("show-secrets").checked ? null : A.maskedPaths(report.findings);
    $("payload").textContent = report.payload ? A.toJsonText(report.payload, masked) : "(could not be decoded)";
    $("signature").textContent = report.signature
      ? `${headerAlg(report)}, ${report.signature.length} bytes`
      : "(could not be decoded)";
    renderTimes(report.times);
    renderDpop();
    const findings = report.findings.slice();
    if (state.verification && !state.verification.verified) findings.push(A.verificationFinding(state.verification));
    renderFindings(findings);
    renderVerification();
  }

  function renderVerification() {
    const out = $("verification");
    const v = state.verification;
    if (state.keyError) {
      out.dataset.state = "key-error";
      out.dataset.code = state.keyError.code;
      out.textContent = `The key cannot be used: ${state.keyError.code}: ${state.keyError.message}`;
    } else if (v === null) {
      out.dataset.state = "none";
      delete out.dataset.code;
      out.textContent = "";
    } else if (v.verified) {
      const unpinned = [v.issuerPinned ? null : "iss", v.audiencePinned ? null : "aud"].filter(Boolean);
      out.dataset.state = "verified";
      out.dataset.code = "verified";
      out.textContent =
        `Verified: signature and claims pass the strict checks (key ${v.kid}, ${v.alg}).` +
        (unpinned.length ? ` ${unpinned.join(" and ")} accepted as found in the token.` : "");
    } else {
      out.dataset.state = "failed";
      out.dataset.code = v.code;
      out.textContent = `Not verified: ${v.code} (${v.error}) in the ${v.part}: ${v.message}`;
    }
  }

  function update() {
    const token = $("token").value.trim();
    if (token === state.token && state.report !== null) return;
    state.token = token;
    state.verification = null;
    state.keyError = null;
    state.report = token ? A.audit(token, { now: Date.now() / 1000 }) : null;
    state.proof = null;
    render();
    if (state.report !== null) {
      const report = state.report;
      A.dpopProof(report).then((proof) => {
        if (state.report !== report || proof === null) return; // the token changed meanwhile
        state.proof = proof;
        renderDpop();
      });
    }
  }

  async function loadKeys() {
    const source = document.querySelector('input[name="key-source"]:checked').value;
    const alg = $("alg").value || null;
    const kidValue = state.report && state.report.header ? state.report.header.get("kid") : undefined;
    const kid = typeof kidValue === "string" && kidValue ? kidValue : null;
    if (source === "jwks") {
      // The one request this page makes: a GET of public keys, no body, nothing of the token.
      const response = await fetch(jwksPath, {
        method: "GET",
        credentials: "same-origin",
        cache: "no-store",
        redirect: "error",
        referrerPolicy: "no-referrer",
        headers: { Accept: "application/json" },
      });
      if (!response.ok) {
        throw new A.JoseError("JWKSUnavailable", "jwks_unavailable", `the JWKS answered HTTP ${response.status}`);
      }
      return A.keysFromJwks(await response.text());
    }
    if (source === "key") return A.keysFromText($("key").value, { alg, kid });
    return A.keysFromSecret($("secret").value, alg, kid);
  }

  async function onVerify() {
    update();
    const token = state.token;
    const out = $("verification");
    if (!token) {
      out.dataset.state = "key-error";
      out.textContent = "Paste a token first.";
      return;
    }
    out.dataset.state = "none";
    out.textContent = "Verifying…";
    let keys;
    try {
      keys = await loadKeys();
    } catch (e) {
      if (!(e instanceof A.JoseError) && !(e instanceof TypeError)) throw e;
      if (state.token !== token) return;
      state.keyError = e instanceof A.JoseError ? e : { code: "jwks_unavailable", message: e.message };
      state.verification = null;
      render();
      return;
    }
    const issuer = $("iss").value.trim();
    const audience = $("aud").value.trim();
    const verification = await A.verify(token, keys, {
      now: Date.now() / 1000,
      issuer: issuer ? [issuer] : null,
      audience: audience ? [audience] : null,
    });
    if (state.token !== token) return; // the token changed while verifying
    state.keyError = null;
    state.verification = verification;
    render();
  }

  function onSourceChange() {
    const source = document.querySelector('input[name="key-source"]:checked').value;
    $("key-field").hidden = source !== "key";
    $("secret-field").hidden = source !== "secret";
    $("alg-field").hidden = source === "jwks";
  }

  function clearAll() {
    for (const id of ["token", "key", "secret", "iss", "aud"]) $(id).value = "";
    $("show-secrets").checked = false;
    state.token = "";
    state.report = null;
    state.proof = null;
    state.verification = null;
    state.keyError = null;
    render();
    renderVerification();
    $("token").focus();
  }

  function start() {
    if (jwksPath) {
      $("jwks-path").textContent = jwksPath;
    } else {
      $("source-jwks").disabled = true;
      $("jwks-path").textContent = "none configured";
      $("source-key").checked = true;
    }
    $("token").addEventListener("input", update);
    $("show-secrets").addEventListener("change", render);
    $("verify").addEventListener("click", onVerify);
    $("clear").addEventListener("click", clearAll);
    for (const radio of document.querySelectorAll('input[name="key-source"]')) radio.addEventListener("change", onSourceChange);
    if (!(globalThis.crypto && globalThis.crypto.subtle)) {
      $("verify").disabled = true;
      $("verification").dataset.state = "key-error";
      $("verification").textContent =
        "Verification needs WebCrypto, which browsers only offer on HTTPS pages or on localhost.";
    }
    onSourceChange();
    update();
  }

  start();
})();
