/*
 * jwtwarden token audit engine, for the web debugger.
 *
 * The same checks as `jwtwarden inspect` (jwtwarden/audit/inspect.py and the payload
 * linter jwtwarden/lint.py), ported line by line; the data both use (finding catalog,
 * algorithm table, linter word lists, patterns and messages) is generated from Python into
 * the block below. A test runs both engines over a corpus of tokens in Chromium and
 * requires identical findings. Verification uses WebCrypto only.
 *
 * Nothing here touches the network, storage or the URL: every function is pure except the
 * WebCrypto calls. Exposed as globalThis.JwtwardenAudit.
 */
(function (root) {
  "use strict";

  /* BEGIN GENERATED TABLES (python -m jwtwarden.audit._jstables) */
const T = {
    "catalog": {
      "malformed": {"severity":"high","fix":"Produce tokens with a JOSE library: three base64url segments without padding, a header and a payload that are JSON objects with unique member names."},
      "oversized_token": {"severity":"medium","fix":"Keep tokens small: put bulky data (permission lists, profiles) behind an API and keep identifiers in the token."},
      "alg_none": {"severity":"critical","fix":"Sign every token (ES256 recommended) and verify with an explicit algorithm allowlist bound to the key, which can never contain none."},
      "alg_missing": {"severity":"high","fix":"Set alg in the protected header; verifiers must still take the algorithm from their key, never from the token."},
      "alg_unsupported": {"severity":"high","fix":"Use ES256 (or EdDSA, PS256, RS256; HS256 only within one service); verifiers refuse algorithms outside their allowlist."},
      "kid_unsafe": {"severity":"high","fix":"Use short opaque kid strings (such as the RFC 7638 thumbprint) and only ever look kid up in a key set, never in a path, a query, a URL or a command."},
      "jku_header": {"severity":"high","fix":"Do not send it: verifiers must take keys only from their own configuration (a pinned JWKS URL), never from the token."},
      "x5u_header": {"severity":"high","fix":"Do not send it: verifiers must take keys only from their own configuration (a pinned JWKS URL), never from the token."},
      "jwk_header": {"severity":"high","fix":"Do not embed keys in tokens: a verifier that uses the embedded key accepts tokens signed by anyone. Configure the verification key on the verifier."},
      "x5c_header": {"severity":"high","fix":"Do not rely on certificates carried by the token: configure the verification key (or validate the chain against pinned trust anchors) on the verifier."},
      "crit_header": {"severity":"medium","fix":"Remove crit unless every verifier implements the extensions it lists; verifiers must refuse unknown critical headers."},
      "zip_header": {"severity":"medium","fix":"Do not compress JWS payloads (zip is defined for JWE only, and compression before encryption leaks data, RFC 8725 section 3.6)."},
      "b64_header": {"severity":"medium","fix":"Use the normal base64url-encoded payload; unencoded payloads (RFC 7797) are not for JWTs."},
      "typ_missing": {"severity":"low","fix":"Set an explicit typ (at+jwt for access tokens, RFC 9068) so one kind of token cannot be passed off as another (RFC 8725 section 3.11)."},
      "typ_unexpected": {"severity":"low","fix":"Use typ JWT or an explicit type of the form application/<kind>+jwt, such as at+jwt."},
      "hmac_multi_service": {"severity":"medium","fix":"Sign with an asymmetric algorithm (ES256): services verify with the public key and only the issuer can sign. With HMAC every verifier can also forge tokens."},
      "signature_missing": {"severity":"high","fix":"Sign the token; verifiers must refuse tokens whose signature is empty."},
      "signature_size": {"severity":"medium","fix":"Produce signatures in the JWS format of the algorithm: raw r||s for ECDSA (not DER), RSA keys of at least 2048 bits."},
      "claim_type": {"severity":"medium","fix":"Use the JSON types of RFC 7519: numbers (NumericDate) for exp, nbf and iat, strings for iss, sub and jti, a string or an array of strings for aud."},
      "exp_missing": {"severity":"high","fix":"Always set exp: access tokens should live 5 to 15 minutes, with rotated refresh tokens for longer sessions."},
      "lifetime_too_long": {"severity":"medium","fix":"Issue access tokens for 15 minutes at most and keep sessions alive with rotated refresh tokens."},
      "dpop_long_lived": {"severity":"low","fix":"Keep DPoP-bound tokens short-lived too (15 minutes at most), and require server nonces in proofs (JWTWARDEN_DPOP_NONCE=1) so that proofs cannot be made in advance by a script that briefly ran in the client (RFC 9449 sections 8 and 11.2)."},
      "expired": {"severity":"info","fix":"Nothing to fix in the token: get a fresh one (refresh)."},
      "not_yet_valid": {"severity":"info","fix":"Check the issuer's clock: the token cannot be used before nbf."},
      "iat_in_future": {"severity":"low","fix":"Check the clocks of the issuer and of this machine (NTP)."},
      "iss_missing": {"severity":"medium","fix":"Set iss, and have every verifier compare it with the expected issuer exactly."},
      "aud_missing": {"severity":"medium","fix":"Set aud to the service(s) the token is for; each verifier must check that aud contains its own identifier."},
      "jti_missing": {"severity":"low","fix":"Set a unique jti so that one token can be revoked (deny list) and replays detected."},
      "sensitive_name": {"severity":"high","fix":"Remove it from the token: a JWT payload is only encoded, anyone holding the token can read it. Keep the data on the server and put an opaque identifier in the token."},
      "card_number": {"severity":"high","fix":"Remove it from the token: a JWT payload is only encoded, anyone holding the token can read it. Keep the data on the server and put an opaque identifier in the token."},
      "ssn": {"severity":"high","fix":"Remove it from the token: a JWT payload is only encoded, anyone holding the token can read it. Keep the data on the server and put an opaque identifier in the token."},
      "cloud_key": {"severity":"high","fix":"Remove it from the token and rotate it now: every holder of the token has seen it."},
      "access_token": {"severity":"high","fix":"Remove it from the token and rotate it now: every holder of the token has seen it."},
      "private_key": {"severity":"high","fix":"Remove it from the token and rotate it now: every holder of the token has seen it."},
      "embedded_jwt": {"severity":"high","fix":"Do not nest tokens: send the inner token separately and verify each token on its own; a token inside a token is readable by every holder."},
      "email": {"severity":"medium","fix":"Remove personal data unless this is an ID token meant to carry it; identify the user with an opaque sub instead."},
      "phone": {"severity":"medium","fix":"Remove personal data unless this is an ID token meant to carry it; identify the user with an opaque sub instead."},
      "high_entropy": {"severity":"medium","fix":"If this is a secret, remove it from the token and rotate it; if it is a public identifier, nothing to do."},
      "too_deep": {"severity":"low","fix":"Flatten the claims: deeply nested payloads were not fully checked."},
      "verification_failed": {"severity":"high","fix":"The strict verifier refused the token at the check its code names (see the verification codes in docs/audit.md); fix the token or the key given."}
    },
    "severities": ["info","low","medium","high","critical"],
    "algorithms": {
      "HS256": {"kty":"oct","family":"HMAC","hash":"SHA-256","hashBytes":32,"curve":null,"minKeyBits":256,"coordinateSize":0},
      "HS384": {"kty":"oct","family":"HMAC","hash":"SHA-384","hashBytes":48,"curve":null,"minKeyBits":384,"coordinateSize":0},
      "HS512": {"kty":"oct","family":"HMAC","hash":"SHA-512","hashBytes":64,"curve":null,"minKeyBits":512,"coordinateSize":0},
      "RS256": {"kty":"RSA","family":"RSASSA-PKCS1-v1_5","hash":"SHA-256","hashBytes":32,"curve":null,"minKeyBits":2048,"coordinateSize":0},
      "RS384": {"kty":"RSA","family":"RSASSA-PKCS1-v1_5","hash":"SHA-384","hashBytes":48,"curve":null,"minKeyBits":2048,"coordinateSize":0},
      "RS512": {"kty":"RSA","family":"RSASSA-PKCS1-v1_5","hash":"SHA-512","hashBytes":64,"curve":null,"minKeyBits":2048,"coordinateSize":0},
      "PS256": {"kty":"RSA","family":"RSASSA-PSS","hash":"SHA-256","hashBytes":32,"curve":null,"minKeyBits":2048,"coordinateSize":0},
      "PS384": {"kty":"RSA","family":"RSASSA-PSS","hash":"SHA-384","hashBytes":48,"curve":null,"minKeyBits":2048,"coordinateSize":0},
      "PS512": {"kty":"RSA","family":"RSASSA-PSS","hash":"SHA-512","hashBytes":64,"curve":null,"minKeyBits":2048,"coordinateSize":0},
      "ES256": {"kty":"EC","family":"ECDSA","hash":"SHA-256","hashBytes":32,"curve":"P-256","minKeyBits":256,"coordinateSize":32},
      "ES384": {"kty":"EC","family":"ECDSA","hash":"SHA-384","hashBytes":48,"curve":"P-384","minKeyBits":384,"coordinateSize":48},
      "ES512": {"kty":"EC","family":"ECDSA","hash":"SHA-512","hashBytes":64,"curve":"P-521","minKeyBits":521,"coordinateSize":66},
      "EdDSA": {"kty":"OKP","family":"EdDSA","hash":null,"hashBytes":0,"curve":"Ed25519","minKeyBits":256,"coordinateSize":0}
    },
    "signatureBytes": {
      "HS256": 32,
      "HS384": 48,
      "HS512": 64,
      "ES256": 64,
      "ES384": 96,
      "ES512": 132,
      "EdDSA": 64
    },
    "rsaMinBytes": 256,
    "headerFindings": [["jku","the header names a URL to fetch the verification key from (jku); a verifier that follows it accepts tokens signed by anyone"],["x5u","the header names a URL to fetch a certificate from (x5u); a verifier that follows it accepts tokens signed by anyone"],["jwk","the header embeds a key (jwk); a verifier that uses it accepts tokens signed by anyone"],["x5c","the header embeds a certificate chain (x5c); a verifier that trusts it without validating the chain accepts tokens signed by anyone"],["crit","the header declares critical extensions (crit); a verifier that does not implement them must refuse the token"],["zip","the header asks for a compressed payload (zip), which is defined only for JWE"],["b64","the header has b64 (RFC 7797 unencoded payload), which JWTs must not use"]],
    "claimTypes": [["iss","a string"],["sub","a string"],["aud","a string or an array of strings"],["exp","a number"],["nbf","a number"],["iat","a number"],["jti","a string"]],
    "refusedHeaders": {
      "crit": "no critical header extension is understood (RFC 7515 section 4.1.11)",
      "b64": "unencoded payloads (RFC 7797) are not accepted",
      "zip": "compressed payloads are not accepted (RFC 8725 section 3.6)",
      "enc": "this is an encrypted JWE, not a JWS"
    },
    "keyHeaders": ["jku","jwk","x5c","x5u"],
    "maxTokenSize": 8192,
    "inspectMaxSize": 262144,
    "maxLifetime": 900,
    "defaultLeeway": 30.0,
    "jsonMaxDepth": 16,
    "mask": "<masked: {code}>",
    "lint": {
      "registeredNames": ["acr","act","address","alg","amr","at_hash","ath","aud","auth_time","azp","birthdate","c_hash","client_id","cnf","cty","email","email_verified","entitlements","events","exp","family_name","gender","given_name","groups","htm","htu","iat","iss","jkt","jti","kid","locale","may_act","middle_name","name","nbf","nickname","nonce","oid","phone_number","phone_number_verified","picture","preferred_username","profile","roles","s_hash","scope","scp","session_state","sid","state","sub","tid","token_type","token_use","txn","typ","updated_at","uti","website","x5t#S256","zoneinfo"],
      "randomByDesign": ["at_hash","ath","c_hash","code_challenge","jkt","jti","kid","nonce","s_hash","session_state","sid","state","sub","uti","x5c","x5t","x5t#S256"],
      "digestWords": ["checksum","digest","fingerprint","hash","thumbprint"],
      "sensitiveWords": [["password",1],["passwd",1],["pwd",1],["pw",1],["pass word",1],["pass hash",1],["pw hash",1],["passphrase",1],["passcode",1],["pin",1],["ssn",1],["social security",1],["credit card",1],["card number",1],["card num",1],["card no",1],["cc number",1],["cc num",1],["cvv",1],["cvc",1],["cvn",1],["secret",2],["api key",2],["private key",2],["priv key",2],["signing key",2],["encryption key",2],["access token",2],["refresh token",2],["id token",2],["auth token",2],["bearer token",2],["session token",2],["api token",2],["passhash",1],["pwhash",1],["socialsecurity",1],["creditcard",1],["cardnumber",1],["cardnum",1],["cardno",1],["ccnumber",1],["ccnum",1],["apikey",2],["privatekey",2],["privkey",2],["signingkey",2],["encryptionkey",2],["accesstoken",2],["refreshtoken",2],["idtoken",2],["authtoken",2],["bearertoken",2],["sessiontoken",2],["apitoken",2]],
      "sensitiveSuffixes": [["password",1],["passwd",1],["passphrase",1],["secret",2],["apikey",2],["privatekey",2],["accesstoken",2],["refreshtoken",2]],
      "random": 2,
      "suffixMinWord": 9,
      "maxSequence": 2,
      "plurals": ["apikeys","cards","keys","numbers","passcodes","passphrases","passwords","pins","secrets","ssns","tokens"],
      "metaWords": ["age","alg","algorithm","attempts","brand","change","changed","configured","count","country","created","disabled","enabled","endpoint","exists","exp","expiration","expire","expired","expires","expiry","field","file","format","id","ids","issued","issuer","kind","label","len","length","location","max","method","min","name","network","path","pattern","policy","present","prompt","provider","ref","regex","required","reset","retries","rotated","rotation","rule","rules","scheme","set","size","state","status","strength","type","updated","uri","url","version"],
      "flagWords": ["allow","allows","can","disable","enable","has","have","is","must","need","needs","no","require","requires","should","supports","use","uses"],
      "prefixedSpecs": [["A","cloud_key","an AWS access key ID","(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])"],["A","cloud_key","a Google API key","AIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])"],["-","cloud_key","a Google OAuth client secret","GOCSPX-[0-9A-Za-z_-]{28}(?![0-9A-Za-z_-])"],["_","cloud_key","a Stripe secret or restricted key","[rs]k_(?:live|test)_[0-9A-Za-z]{10,}"],["_","cloud_key","a Stripe webhook signing secret","whsec_[0-9A-Za-z+/]{24,}"],["-","cloud_key","a Slack token","xox[abeoprs]-[0-9A-Za-z-]{10,}"],["hooks.slack.com/","cloud_key","a Slack incoming-webhook address","hooks\\.slack\\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]{16,}"],["SG.","cloud_key","a SendGrid API key","SG\\.[0-9A-Za-z_-]{22}\\.[0-9A-Za-z_-]{43}(?![0-9A-Za-z_-])"],["-","cloud_key","an OpenAI API key","sk-(?:(?:proj|svcacct|admin)-(?:[A-Za-z0-9_-]{74}|[A-Za-z0-9_-]{58})T3BlbkFJ(?:[A-Za-z0-9_-]{74}|[A-Za-z0-9_-]{58})|[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20})"],["-","cloud_key","an Anthropic API key","sk-ant-(?:api|admin)[0-9]{2}-[A-Za-z0-9_-]{80,}"],["Key=","cloud_key","an Azure storage or service bus key","(?:AccountKey|SharedAccessKey)=[A-Za-z0-9+/]{40,}"],["Q~","cloud_key","an Azure AD client secret","(?<![A-Za-z0-9_~.-])[A-Za-z0-9_~.]{3}[0-9]Q~[A-Za-z0-9_~.-]{31,34}(?![A-Za-z0-9_~.-])"],["_","cloud_key","a DigitalOcean token","do[opr]_v1_[a-f0-9]{64}"],["_","access_token","a GitHub token","gh[oprsu]_[A-Za-z0-9]{36,251}(?![A-Za-z0-9])"],["_","access_token","a GitHub fine-grained token","github_pat_[A-Za-z0-9_]{82,}"],["-","access_token","a GitLab token","gl(?:pat|ptt|rt|dt|oas|soat|cbt)-[A-Za-z0-9_-]{20,}"],["_","access_token","an npm access token","npm_[A-Za-z0-9]{36}(?![A-Za-z0-9])"],["-","access_token","a PyPI API token","pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}"],["_","access_token","a jwtwarden refresh token","jwr_[A-Za-z0-9_-]{80,}"]],
      "prefixedMinLen": 15,
      "fileExtensions": ["bmp","gif","ico","jpeg","jpg","pdf","png","svg","webp"],
      "jwkPrivateMembers": ["d","dp","dq","oth","p","q","qi"],
      "maxDepth": 32,
      "jwtHeaderMax": 4096,
      "cardFirstDigits": "23456",
      "cardIntMin": "1000000000000",
      "cardIntMax": "10000000000000000000",
      "entropyMinLen": 32,
      "entropyLenCap": 256,
      "minClassSwitchRate": 0.45,
      "minEntropyRatio": 0.85,
      "patterns": {"uuid":"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}","pem_private":"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----","jwt":"e[wy][A-Za-z0-9_-]{13,}\\.[A-Za-z0-9_-]*\\.","digitish":"[0-9][-0-9 ().]{6,}[0-9]","card":"(?<![\\w.-])(?:[0-9]{13,19}|[0-9]{3,6}(?:[ -][0-9]{3,6}){1,5})(?![\\w-]|\\.[0-9])","ssn":"(?<![\\w.-])(?!000|666|9)[0-9]{3}([- ])(?!00)[0-9]{2}\\1(?!0000)[0-9]{4}(?![\\w-]|\\.[0-9])","e164":"(?<![\\w+])\\+\\(?[0-9](?:[ ()-]{0,2}[0-9]){7,14}(?![0-9])","nanp":"(?<![\\w.-])(?:1[-. ])?(?:\\([0-9]{3}\\) ?|[0-9]{3}[-. ])[0-9]{3}[-. ][0-9]{4}(?![\\w-]|\\.[0-9])","email":"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+([A-Za-z]{2,63})(?![A-Za-z0-9-])","entropy_run":"[A-Za-z0-9+/_-]{32,}","class_runs":"[a-z]+|[A-Z]+|[0-9]+|[^A-Za-z0-9]+","words":"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+"},
      "hits": {"name":["sensitive_name","high","the claim name suggests a secret, a credential or sensitive personal data"],"too_deep":["too_deep","low","claims nest more than 32 levels deep; the content below was not scanned"],"pem":["private_key","high","the value contains a PEM private key block"],"jwk":["private_key","high","the object is a JWK with private key members"],"jwt":["embedded_jwt","high","the value contains a compact JWS/JWE token (a token inside a token)"],"card":["card_number","high","the value looks like a payment card number (it passes the Luhn check)"],"ssn":["ssn","high","the value looks like a US Social Security number"],"phone":["phone","medium","the value contains a phone number (personal data)"],"email":["email","medium","the value contains an e-mail address (personal data)"],"entropy":["high_entropy","medium","the value contains a long random-looking string that may be a secret"]}
    }
  };
/* END GENERATED TABLES */

  // ----------------------------------------------------------------------- errors

  class JoseError extends Error {
    constructor(errorClass, code, message, extra) {
      super(message);
      this.errorClass = errorClass;
      this.code = code;
      Object.assign(this, extra || {});
    }
  }
  const malformed = (m) => new JoseError("MalformedToken", "malformed", m);
  const invalidKey = (m) => new JoseError("InvalidKey", "invalid_key", m);
  const weakKey = (m) => new JoseError("WeakKey", "weak_key", m);

  // ----------------------------------------------------------------------- text

  /** Length in code points, as Python's len(). */
  function cpLength(s) {
    let n = 0;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
        const d = s.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) i++;
      }
      n++;
    }
    return n;
  }
  const isAscii = (s) => /^[\x00-\x7f]*$/.test(s);
  const countChar = (s, ch) => s.split(ch).length - 1;
  const pyRepr = (s) => "'" + s + "'";

  // ----------------------------------------------------------------------- base64url (jose/b64.py)

  const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const B64VAL = new Map([...B64].map((c, i) => [c, i]));
  const LAST_OK = [
    null,
    null,
    new Set([...B64].filter((c, i) => (i & 0x0f) === 0)),
    new Set([...B64].filter((c, i) => (i & 0x03) === 0)),
  ];

  function decodeGroups(s, strict) {
    const out = new Uint8Array(Math.floor((s.length * 3) / 4));
    let acc = 0;
    let bits = 0;
    let j = 0;
    for (const c of s) {
      const v = B64VAL.get(c);
      if (v === undefined) {
        if (strict) throw malformed("invalid base64url");
        continue;
      }
      acc = (acc << 6) | v;
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        out[j++] = (acc >> bits) & 0xff;
        acc &= (1 << bits) - 1;
      }
    }
    return out.subarray(0, j);
  }

  /** Strict unpadded base64url, exactly as jwtwarden.jose.b64.b64url_decode. */
  function b64urlDecode(s) {
    if (!isAscii(s)) throw malformed("non-ASCII character in base64url");
    const rem = s.length & 3;
    if (rem && (rem === 1 || !LAST_OK[rem].has(s[s.length - 1]))) {
      throw malformed("invalid base64url length or trailing bits");
    }
    return decodeGroups(s, true);
  }

  function b64urlEncode(bytes) {
    let out = "";
    let i = 0;
    for (; i + 2 < bytes.length; i += 3) {
      const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
      out += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + B64[n & 63];
    }
    if (bytes.length - i === 1) {
      const n = bytes[i] << 16;
      out += B64[n >> 18] + B64[(n >> 12) & 63];
    } else if (bytes.length - i === 2) {
      const n = (bytes[i] << 16) | (bytes[i + 1] << 8);
      out += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63];
    }
    return out;
  }

  // ----------------------------------------------------------------------- strict JSON (jose/strict_json.py)

  /** A JSON number written with a fraction or an exponent (a Python float). */
  class JsonFloat {
    constructor(value, raw) {
      this.value = value;
      this.raw = raw;
    }
  }
  class DuplicateMember extends Error {}
  class JsonSyntax extends Error {}

  const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  const UTF8_ENCODER = new TextEncoder();
  const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
  const INT_MAX_DIGITS = 4300; // Python's int() limit for decimal strings

  /**
   * JSON text to values: objects are Maps (insertion order, any member name), arrays are
   * Arrays, integers are Numbers (BigInts beyond 2^53), other numbers JsonFloat.
   */
  function parseJsonText(text) {
    let i = 0;
    const n = text.length;
    const NUM = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?/y;
    const fail = () => {
      throw new JsonSyntax();
    };
    const ws = () => {
      while (i < n) {
        const c = text.charCodeAt(i);
        if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
        else break;
      }
    };
    function literal(word, v) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
      return fail();
    }
    function number() {
      NUM.lastIndex = i;
      const m = NUM.exec(text);
      if (!m) fail();
      i = NUM.lastIndex;
      const raw = m[0];
      if (m[1] === undefined && m[2] === undefined) {
        if (raw.replace("-", "").length > INT_MAX_DIGITS) fail();
        const big = BigInt(raw);
        return big > MAX_SAFE || big < -MAX_SAFE ? big : Number(raw);
      }
      const v = Number(raw);
      if (!Number.isFinite(v)) fail();
      return new JsonFloat(v, raw);
    }
    const ESCAPES = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };
    function string() {
      i++;
      let out = "";
      let start = i;
      for (;;) {
        if (i >= n) fail();
        const c = text.charCodeAt(i);
        if (c === 0x22) {
          out += text.slice(start, i);
          i++;
          return out;
        }
        if (c === 0x5c) {
          out += text.slice(start, i);
          const e = text[i + 1];
          if (e === "u") {
            const hex = text.substr(i + 2, 4);
            if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail();
            out += String.fromCharCode(parseInt(hex, 16));
            i += 6;
          } else if (e !== undefined && Object.prototype.hasOwnProperty.call(ESCAPES, e)) {
            out += ESCAPES[e];
            i += 2;
          } else {
            fail();
          }
          start = i;
          continue;
        }
        if (c < 0x20) fail();
        i++;
      }
    }
    function object() {
      i++;
      const map = new Map();
      let count = 0;
      ws();
      if (text[i] === "}") {
        i++;
        return map;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail();
        const key = string();
        ws();
        if (text[i] !== ":") fail();
        i++;
        const v = value();
        if (!map.has(key)) map.set(key, v);
        count++;
        ws();
        const c = text[i];
        if (c === ",") {
          i++;
          continue;
        }
        if (c === "}") {
          i++;
          if (map.size !== count) throw new DuplicateMember();
          return map;
        }
        fail();
      }
    }
    function array() {
      i++;
      const arr = [];
      ws();
      if (text[i] === "]") {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(value());
        ws();
        const c = text[i];
        if (c === ",") {
          i++;
          continue;
        }
        if (c === "]") {
          i++;
          return arr;
        }
        fail();
      }
    }
    function value() {
      ws();
      if (i >= n) fail();
      const c = text[i];
      if (c === "{") return object();
      if (c === "[") return array();
      if (c === '"') return string();
      if (c === "t") return literal("true", true);
      if (c === "f") return literal("false", false);
      if (c === "n") return literal("null", null);
      if (c === "-" || (c >= "0" && c <= "9")) return number();
      return fail();
    }
    const result = value();
    ws();
    if (i !== n) fail();
    return result;
  }

  function tooDeep(text) {
    // A string literal, or an unclosed quote and everything after it (as strict_json.py):
    // retrying an unclosed string from every later quote was quadratic.
    const stripped = text.replace(/"(?:[^"\\]|\\[\s\S])*"|"[\s\S]*/g, "");
    let depth = 0;
    for (const c of stripped) {
      if (c === "[" || c === "{") {
        depth++;
        if (depth > T.jsonMaxDepth) return true;
      } else if (c === "]" || c === "}") {
        depth--;
      }
    }
    return false;
  }

  function hasLoneSurrogateText(s) {
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0xd800 && c <= 0xdbff) {
        const d = s.charCodeAt(i + 1);
        if (!(d >= 0xdc00 && d <= 0xdfff)) return true;
        i++;
      } else if (c >= 0xdc00 && c <= 0xdfff) {
        return true;
      }
    }
    return false;
  }

  function hasLoneSurrogate(value) {
    const stack = [value];
    while (stack.length) {
      const item = stack.pop();
      if (typeof item === "string") {
        if (hasLoneSurrogateText(item)) return true;
      } else if (item instanceof Map) {
        for (const [k, v] of item) stack.push(k, v);
      } else if (Array.isArray(item)) {
        for (const v of item) stack.push(v); // push(...item) overflows on huge arrays
      }
    }
    return false;
  }

  /** Strict JSON object from UTF-8 bytes, exactly as jwtwarden.jose.strict_json.parse_object. */
  function parseObject(bytes, what) {
    let text;
    try {
      text = UTF8.decode(bytes);
    } catch (e) {
      throw malformed(`${what} is not UTF-8`);
    }
    if (countChar(text, "{") + countChar(text, "[") > T.jsonMaxDepth && tooDeep(text)) {
      throw malformed(`${what} is nested deeper than ${T.jsonMaxDepth}`);
    }
    let obj;
    try {
      obj = parseJsonText(text);
    } catch (e) {
      if (e instanceof DuplicateMember) throw malformed(`${what} has duplicate member names`);
      if (e instanceof JsonSyntax) throw malformed(`${what} is not valid JSON`);
      throw e;
    }
    if (!(obj instanceof Map)) throw malformed(`${what} is not a JSON object`);
    if (text.includes("\\u") && /\\u[dD][89a-fA-F]/.test(text) && hasLoneSurrogate(obj)) {
      throw malformed(`${what} contains a lone surrogate`);
    }
    return obj;
  }

  // value kinds, as Python sees them
  const isNumber = (v) => typeof v === "number" || typeof v === "bigint" || v instanceof JsonFloat;
  const isInt = (v) => typeof v === "number" || typeof v === "bigint";
  const isStr = (v) => typeof v === "string";
  const num = (v) => (v instanceof JsonFloat ? v.value : Number(v));

  // ----------------------------------------------------------------------- the payload linter (lint.py)

  const L = T.lint;
  const P = L.patterns;
  const RX = {
    uuid: new RegExp(`^(?:${P.uuid})$`),
    pemPrivate: new RegExp(P.pem_private),
    digitish: new RegExp(P.digitish),
    card: new RegExp(P.card, "g"),
    ssn: new RegExp(P.ssn),
    e164: new RegExp(P.e164),
    nanp: new RegExp(P.nanp),
    email: new RegExp(P.email, "g"),
    // tried at run starts only (as lint.py): retrying short runs from each character is wasted
    entropyRun: new RegExp("(?<![A-Za-z0-9+/_-])" + P.entropy_run, "g"),
    b64urlRuns: /[A-Za-z0-9_-]+/g,
    b64urlRunAt: /[A-Za-z0-9_-]*/y,
    jwtStart: /e[wy]/,
    classRuns: new RegExp(P.class_runs, "g"),
    words: new RegExp(P.words, "g"),
  };
  const HIT = {};
  for (const [name, [code, severity, message]] of Object.entries(L.hits)) {
    HIT[name] = { code, severity, message };
  }
  const REGISTERED = new Set(L.registeredNames);
  const RANDOM_BY_DESIGN = new Set(L.randomByDesign);
  const DIGEST_WORDS = new Set(L.digestWords);
  const SENSITIVE_WORDS = new Map(L.sensitiveWords);
  const PLURALS = new Set(L.plurals);
  const META_WORDS = new Set(L.metaWords);
  const FLAG_WORDS = new Set(L.flagWords);
  const FIRST_WORDS = new Set([...SENSITIVE_WORDS.keys()].map((s) => s.split(" ")[0]));
  const FILE_EXTENSIONS = new Set(L.fileExtensions);
  const JWK_PRIVATE = new Set(L.jwkPrivateMembers);
  const ALNUM = /[A-Za-z0-9]/;
  const CARD_INT_MIN = BigInt(L.cardIntMin);
  const CARD_INT_MAX = BigInt(L.cardIntMax);
  const NAME_SENSITIVE = 1;
  const NAME_RANDOM_VALUE = 2;

  // (gate, combined pattern, [sticky member pattern, hit]) in the order of lint.py
  const FAMILIES = [];
  for (const [gate] of L.prefixedSpecs) {
    if (FAMILIES.some((f) => f.gate === gate)) continue;
    const specs = L.prefixedSpecs.filter((s) => s[0] === gate);
    FAMILIES.push({
      gate,
      combined: new RegExp(specs.map((s) => `(?:${s[3]})`).join("|"), "g"),
      members: specs.map((s) => ({
        pattern: new RegExp(s[3], "y"),
        hit: { code: s[1], severity: "high", message: `the value looks like ${s[2]}` },
      })),
    });
  }

  const singular = (w) => (PLURALS.has(w) ? w.slice(0, -1) : w);

  function suffixKind(word) {
    if (word.length >= L.suffixMinWord) {
      for (const [suffix, kind] of L.sensitiveSuffixes) if (word.endsWith(suffix)) return kind;
    }
    return null;
  }

  function lastIndex(words, vocabulary) {
    for (let i = words.length - 1; i >= 0; i--) if (vocabulary.has(words[i])) return i;
    return -1;
  }

  // As lint.py: a flag word anywhere before a candidate, or a metadata (digest) word anywhere
  // after it, neutralises it; the first flag word and the last metadata and digest words
  // answer that for every candidate (looking before and after each one was quadratic).
  function wordsAreSensitive(words) {
    const count = words.length;
    let firstFlag = words.findIndex((w) => FLAG_WORDS.has(w));
    if (firstFlag < 0) firstFlag = count;
    const lastMeta = lastIndex(words, META_WORDS);
    const lastDigest = lastIndex(words, DIGEST_WORDS);
    const stop = Math.min(count, firstFlag + 1);
    for (let start = 0; start < stop; start++) {
      const word = words[start];
      if (!FIRST_WORDS.has(word) && word.length < L.suffixMinWord) continue;
      for (let size = Math.min(L.maxSequence, count - start); size > 0; size--) {
        const end = start + size;
        let kind = SENSITIVE_WORDS.get(words.slice(start, end).join(" "));
        if (kind === undefined && size === 1) kind = suffixKind(word);
        if (kind === undefined || kind === null || lastMeta >= end) continue;
        if (kind === L.random && lastDigest >= end) continue;
        return true;
      }
    }
    return false;
  }

  const nameCache = new Map();
  function nameFlags(name) {
    const cached = nameCache.get(name);
    if (cached !== undefined) return cached;
    let flags = RANDOM_BY_DESIGN.has(name) ? NAME_RANDOM_VALUE : 0;
    if (!REGISTERED.has(name)) {
      const words = (name.match(RX.words) || []).map((w) => singular(w.toLowerCase()));
      if (words.length && DIGEST_WORDS.has(words[words.length - 1])) flags |= NAME_RANDOM_VALUE;
      if (wordsAreSensitive(words)) flags |= NAME_SENSITIVE;
    }
    if (nameCache.size > 4096) nameCache.clear();
    nameCache.set(name, flags);
    return flags;
  }

  function luhn(digits) {
    let total = 0;
    let double = false;
    for (let i = digits.length - 1; i >= 0; i--) {
      let value = digits.charCodeAt(i) - 48;
      if (double) value = value > 4 ? value * 2 - 9 : value * 2;
      total += value;
      double = !double;
    }
    return total % 10 === 0;
  }
  const isCard = (d) =>
    d.length >= 13 && d.length <= 19 && L.cardFirstDigits.includes(d[0]) && luhn(d);

  function hasCard(text) {
    for (const m of text.matchAll(RX.card)) {
      if (isCard(m[0].replaceAll(" ", "").replaceAll("-", ""))) return true;
    }
    return false;
  }

  function isJoseHeader(segment) {
    if (segment.length > L.jwtHeaderMax || segment.length % 4 === 1) return false;
    try {
      const header = JSON.parse(UTF8.decode(decodeGroups(segment, false)));
      return (
        header !== null &&
        typeof header === "object" &&
        !Array.isArray(header) &&
        Object.prototype.hasOwnProperty.call(header, "alg")
      );
    } catch (e) {
      return false;
    }
  }

  // The matches of P.jwt that start a base64url run, found in one pass (as _JWT_RUN in
  // lint.py): trying P.jwt from every "ey"/"ew" of a long run rescanned the rest of the run
  // each time. Within a run only the leftmost "ey"/"ew" can start a match that counts.
  function hasJwt(text) {
    const runs = RX.b64urlRuns;
    runs.lastIndex = 0;
    let m;
    while ((m = runs.exec(text)) !== null) {
      const run = m[0];
      const end = m.index + run.length;
      if (text[end] !== ".") continue;
      RX.b64urlRunAt.lastIndex = end + 1;
      RX.b64urlRunAt.test(text);
      const nextEnd = RX.b64urlRunAt.lastIndex; // the run after the dot, possibly empty
      if (text[nextEnd] !== ".") continue; // that run may start a token of its own
      const start = run.search(RX.jwtStart);
      if (start < 0 || run.length - start < 15) continue;
      if (start === 0 && isJoseHeader(run)) return true;
      runs.lastIndex = nextEnd + 1;
    }
    return false;
  }

  function prefixedHit(text) {
    for (const family of FAMILIES) {
      if (!text.includes(family.gate)) continue;
      for (const m of text.matchAll(family.combined)) {
        const start = m.index;
        if (start && ALNUM.test(text[start - 1])) continue;
        for (const member of family.members) {
          member.pattern.lastIndex = start;
          if (member.pattern.test(text)) return member.hit;
        }
      }
    }
    return null;
  }

  // The user part of a URL ("scheme://user@host") is not an address: the last "/" or
  // whitespace before the match is the second "/" of a "//" (as lint.py). That separator
  // is tracked as the matches come, reading the text once (looking back to the last "//"
  // from every match was quadratic).
  function hasEmail(text) {
    let lastSep = -1;
    let scanned = 0;
    for (const m of text.matchAll(RX.email)) {
      if (FILE_EXTENSIONS.has(m[1].toLowerCase())) continue;
      const start = m.index;
      for (let i = scanned; i < start; i++) {
        const c = text.charCodeAt(i);
        if (c === 47 || c === 32 || c === 9 || c === 13 || c === 10) lastSep = i;
      }
      scanned = start;
      if (lastSep > 0 && text[lastSep] === "/" && text[lastSep - 1] === "/") continue;
      return true;
    }
    return false;
  }

  const entropyCache = new Map();
  function binomial(n, k) {
    let r = 1n;
    for (let i = 1n; i <= BigInt(k); i++) r = (r * (BigInt(n) - BigInt(k) + i)) / i;
    return r;
  }
  function expectedEntropy(alphabet, length) {
    const key = `${alphabet}:${length}`;
    if (entropyCache.has(key)) return entropyCache.get(key);
    const p = 1.0 / alphabet;
    let expectedSum = 0.0;
    for (let k = 2; k <= length; k++) {
      expectedSum += Number(binomial(length, k)) * p ** k * (1.0 - p) ** (length - k) * k * Math.log2(k);
    }
    const result = Math.log2(length) - (alphabet * expectedSum) / length;
    entropyCache.set(key, result);
    return result;
  }

  function looksRandom(run) {
    const counts = new Map();
    for (const c of run) counts.set(c, (counts.get(c) || 0) + 1);
    const has = (re) => [...counts.keys()].some((c) => re.test(c));
    if (!has(/[a-z]/) || !has(/[A-Z]/) || !has(/[0-9]/)) return false;
    const length = run.length;
    const switches = (run.match(RX.classRuns) || []).length - 1;
    if (switches < L.minClassSwitchRate * (length - 1)) return false;
    let entropy = 0;
    for (const c of counts.values()) entropy += (c / length) * Math.log2(c / length);
    entropy = -entropy;
    const alphabet = has(/[+/_-]/) ? 64 : 62;
    return entropy >= L.minEntropyRatio * expectedEntropy(alphabet, Math.min(length, L.entropyLenCap));
  }

  function hasHighEntropy(text) {
    if (text.includes("-----BEGIN CERTIFICATE-----") || text.includes("PUBLIC KEY-----")) return false;
    for (const m of text.matchAll(RX.entropyRun)) if (looksRandom(m[0])) return true;
    return false;
  }

  function scanStr(text, randomExpected) {
    const length = cpLength(text);
    if (length >= L.prefixedMinLen) {
      if (length === 36 && RX.uuid.test(text)) return null;
      if (text.includes("PRIVATE KEY") && RX.pemPrivate.test(text)) return HIT.pem;
      if (text.includes(".") && (text.includes("ey") || text.includes("ew")) && hasJwt(text)) return HIT.jwt;
      const hit = prefixedHit(text);
      if (hit !== null) return hit;
    }
    if (length >= 9 && RX.digitish.test(text)) {
      if (length >= 13 && hasCard(text)) return HIT.card;
      if (length >= 11 && RX.ssn.test(text)) return HIT.ssn;
      if ((text.includes("+") && RX.e164.test(text)) || (length >= 12 && RX.nanp.test(text))) return HIT.phone;
    }
    if (text.includes("@") && hasEmail(text)) return HIT.email;
    if (!randomExpected && length >= L.entropyMinLen && hasHighEntropy(text)) return HIT.entropy;
    return null;
  }

  function intHit(value) {
    const big = BigInt(value);
    if (big >= CARD_INT_MIN && big < CARD_INT_MAX && isCard(big.toString())) return HIT.card;
    return null;
  }

  function isPrivateJwk(obj) {
    const kty = obj.get("kty");
    if (!isStr(kty)) return false;
    for (const k of obj.keys()) if (JWK_PRIVATE.has(k)) return true;
    return kty === "oct" && obj.has("k");
  }

  const pointerToken = (name) =>
    name.includes("~") || name.includes("/") ? name.replaceAll("~", "~0").replaceAll("/", "~1") : name;

  function push(out, hit, path) {
    out.push({ code: hit.code, severity: hit.severity, path, message: hit.message });
  }

  function visit(value, path, depth, randomExpected, out) {
    let hit = null;
    if (Array.isArray(value)) {
      if (depth > L.maxDepth) hit = HIT.too_deep;
      else walkArray(value, path, depth, randomExpected, out);
    } else if (value instanceof Map) {
      if (depth > L.maxDepth) hit = HIT.too_deep;
      else if (value.has("kty") && isPrivateJwk(value)) hit = HIT.jwk;
      else walkObject(value, path, depth, randomExpected || value.has("kty"), out);
    } else if (isStr(value)) {
      if (cpLength(value) >= 6) hit = scanStr(value, randomExpected);
    } else if (isInt(value)) {
      hit = intHit(value);
    }
    if (hit !== null) push(out, hit, path);
  }

  function scanScalar(item, path, randomExpected, out) {
    // the inlined common cases of lint.py's walkers; true when handled
    if (isStr(item)) {
      if (cpLength(item) >= 6) {
        const hit = scanStr(item, randomExpected);
        if (hit !== null) push(out, hit, path);
      }
      return true;
    }
    if (isInt(item)) {
      if (BigInt(item) >= CARD_INT_MIN) {
        const hit = intHit(item);
        if (hit !== null) push(out, hit, path);
      }
      return true;
    }
    return item === null || typeof item === "boolean" || item instanceof JsonFloat;
  }

  function walkArray(seq, prefix, depth, randomExpected, out) {
    seq.forEach((item, index) => {
      const path = `${prefix}/${index}`;
      if (!scanScalar(item, path, randomExpected, out)) visit(item, path, depth + 1, randomExpected, out);
    });
  }

  function walkObject(obj, prefix, depth, randomExpected, out) {
    for (const [name, value] of obj) {
      const flags = nameFlags(name);
      const path = `${prefix}/${pointerToken(name)}`;
      let valueRandom = randomExpected;
      if (flags) {
        if (flags & NAME_SENSITIVE && value !== null && typeof value !== "boolean") push(out, HIT.name, path);
        valueRandom = randomExpected || Boolean(flags & NAME_RANDOM_VALUE);
      }
      if (!scanScalar(value, path, valueRandom, out)) visit(value, path, depth + 1, valueRandom, out);
    }
  }

  /** jwtwarden.lint_claims: findings {code, severity, path, message} in document order. */
  function lintClaims(claims) {
    const out = [];
    walkObject(claims, "", 0, false, out);
    return out;
  }

  // ----------------------------------------------------------------------- inspect (audit/inspect.py)

  const ALG_NAMES = Object.keys(T.algorithms);
  const HMAC_ALGS = new Set(["HS256", "HS384", "HS512"]);
  const TEN_YEARS = 10 * 365 * 86400;
  const UNITS = [
    [86400, "d"],
    [3600, "h"],
    [60, "min"],
    [1, "s"],
  ];

  /** "2 d 3 h", "15 min 1 s", "0 s": as jwtwarden.audit.inspect.format_duration. */
  function formatDuration(seconds) {
    if (!(seconds < TEN_YEARS)) return "more than 10 years";
    let rest = Math.trunc(seconds);
    const parts = [];
    for (const [size, label] of UNITS) {
      const count = Math.floor(rest / size);
      rest %= size;
      if (count) parts.push(`${count} ${label}`);
    }
    return parts.slice(0, 2).join(" ") || "0 s";
  }

  function mediaType(value) {
    const lower = value.toLowerCase();
    return lower.startsWith("application/") ? lower.slice(12) : lower;
  }

  function host(value) {
    const schemeEnd = value.indexOf("://");
    if (schemeEnd > 0) {
      const rest = value.slice(schemeEnd + 3);
      let end = rest.length;
      for (const c of "/?#") {
        const index = rest.indexOf(c);
        if (index >= 0 && index < end) end = index;
      }
      let authority = rest.slice(0, end);
      authority = authority.slice(authority.lastIndexOf("@") + 1);
      let h;
      if (authority.startsWith("[")) {
        const close = authority.indexOf("]");
        h = close > 0 ? authority.slice(0, close + 1) : authority;
      } else {
        const colon = authority.lastIndexOf(":");
        h = colon >= 0 ? authority.slice(0, colon) : authority;
      }
      return h.toLowerCase() || null;
    }
    if (value.includes(".") && /^[A-Za-z0-9.-]+$/.test(value)) return value.toLowerCase();
    return null;
  }

  const isControl = (code) => code < 0x20 || (code >= 0x7f && code <= 0x9f);

  function collector() {
    const findings = [];
    return {
      findings,
      add(code, part, path, message) {
        const spec = T.catalog[code];
        findings.push({ code, severity: spec.severity, part, path, message, fix: spec.fix });
      },
    };
  }

  function oversizedMessage(size) {
    return (
      `the token is ${size} characters long; verifiers refuse tokens over ` +
      `${T.maxTokenSize} characters (8 KiB) before decoding them`
    );
  }

  function split(token, out) {
    const size = cpLength(token);
    if (size > T.inspectMaxSize) {
      out.add("oversized_token", "token", "", oversizedMessage(size));
      out.add("malformed", "token", "", `the token is over ${T.inspectMaxSize} characters; it was not inspected`);
      return null;
    }
    if (size > T.maxTokenSize) out.add("oversized_token", "token", "", oversizedMessage(size));
    if (!isAscii(token)) {
      out.add("malformed", "token", "", "the token contains non-ASCII characters");
      return null;
    }
    if (/[ \t\r\n\f\v]/.test(token)) {
      out.add("malformed", "token", "", "the token contains whitespace (a line break or space pasted inside it?)");
      return null;
    }
    const segments = token.split(".");
    if (segments.length === 5) {
      out.add(
        "malformed",
        "token",
        "",
        "the token has five segments: it is an encrypted JWE, which cannot be read " +
          "without its decryption key; inspect reads signed JWTs (JWS)",
      );
      return null;
    }
    if (segments.length !== 3) {
      out.add("malformed", "token", "", `a signed JWT has three dot-separated segments; this token has ${segments.length}`);
      return null;
    }
    return segments;
  }

  function decodeBytes(segment, part, out) {
    try {
      return b64urlDecode(segment);
    } catch (e) {
      if (!(e instanceof JoseError)) throw e;
      out.add("malformed", part, "", `the ${part} segment is not strict base64url: ${e.message}`);
      return null;
    }
  }

  function decodeObject(segment, part, out) {
    const raw = decodeBytes(segment, part, out);
    if (raw === null) return null;
    try {
      return parseObject(raw, part);
    } catch (e) {
      if (!(e instanceof JoseError)) throw e;
      out.add("malformed", part, "", e.message);
      return null;
    }
  }

  function checkKid(kid, out) {
    if (!isStr(kid)) {
      out.add("kid_unsafe", "header", "/kid", "kid is not a string");
      return;
    }
    const reasons = [];
    if (kid.includes("/") || kid.includes("\\") || kid.includes("..")) reasons.push("a path separator or '..'");
    if (/["'`]/.test(kid)) reasons.push("a quote");
    if ([...kid].some((c) => isControl(c.codePointAt(0)))) reasons.push("a control character");
    if (reasons.length) out.add("kid_unsafe", "header", "/kid", "kid contains " + reasons.join(" and "));
  }

  function checkHeader(header, out) {
    const alg = header.get("alg");
    if (!header.has("alg")) out.add("alg_missing", "header", "/alg", "the header has no alg");
    else if (!isStr(alg)) out.add("alg_missing", "header", "/alg", "alg is not a string");
    else if (alg.toLowerCase() === "none") {
      out.add("alg_none", "header", "/alg", "alg is none: the token is not signed and anyone can write one");
    } else if (!Object.prototype.hasOwnProperty.call(T.algorithms, alg)) {
      out.add(
        "alg_unsupported",
        "header",
        "/alg",
        "alg is not one of the algorithms jwtwarden accepts (" + ALG_NAMES.join(", ") + ")",
      );
    }
    if (header.has("kid")) checkKid(header.get("kid"), out);
    for (const [name, message] of T.headerFindings) {
      if (header.has(name)) out.add(`${name}_header`, "header", `/${name}`, message);
    }
    if (!header.has("typ")) {
      out.add("typ_missing", "header", "/typ", "the header has no typ, so this token can be passed off as another kind of JWT");
    } else {
      const typ = header.get("typ");
      if (!isStr(typ)) out.add("typ_unexpected", "header", "/typ", "typ is not a string");
      else {
        const kind = mediaType(typ);
        if (kind !== "jwt" && !kind.endsWith("+jwt")) {
          out.add("typ_unexpected", "header", "/typ", "typ does not name a JWT type (JWT or application/<kind>+jwt)");
        }
      }
    }
  }

  function checkHmacAudience(header, payload, out) {
    if (!HMAC_ALGS.has(header.get("alg"))) return;
    const aud = payload.get("aud");
    let audiences = [];
    if (Array.isArray(aud)) audiences = [...new Set(aud.filter(isStr))];
    else if (isStr(aud)) audiences = [aud];
    if (audiences.length > 1) {
      out.add(
        "hmac_multi_service",
        "header",
        "/alg",
        `alg is HMAC and aud names ${audiences.length} audiences: every service that ` +
          "verifies holds the secret and can forge tokens for the others",
      );
      return;
    }
    const iss = payload.get("iss");
    if (audiences.length === 1 && isStr(iss)) {
      const issHost = host(iss);
      const audHost = host(audiences[0]);
      if (issHost !== null && audHost !== null && issHost !== audHost) {
        out.add(
          "hmac_multi_service",
          "header",
          "/alg",
          "alg is HMAC and iss and aud are different hosts: the audience holds the " +
            "issuer's secret and can forge tokens",
        );
      }
    }
  }

  function checkSignature(header, signature, algNone, out) {
    if (!signature.length) {
      if (!algNone) out.add("signature_missing", "signature", "", "the signature is empty: the token is not signed");
      return;
    }
    const alg = header !== null ? header.get("alg") : undefined;
    if (!isStr(alg) || !Object.prototype.hasOwnProperty.call(T.algorithms, alg)) return;
    const size = signature.length;
    const expected = T.signatureBytes[alg];
    if (expected === undefined) {
      if (size < T.rsaMinBytes) {
        out.add("signature_size", "signature", "", `the signature is ${size} bytes: the RSA key has fewer than 2048 bits`);
      }
    } else if (size !== expected) {
      let message = `the signature is ${size} bytes; ${alg} signatures are ${expected} bytes`;
      if (alg.startsWith("ES") && signature[0] === 0x30) message += " (it looks DER-encoded; JWS needs raw r||s)";
      out.add("signature_size", "signature", "", message);
    }
  }

  /** The cnf.jkt of a DPoP-bound token (RFC 9449 section 6), or null. */
  function dpopJkt(payload) {
    const cnf = payload === null ? undefined : payload.get("cnf");
    const jkt = cnf instanceof Map ? cnf.get("jkt") : undefined;
    return isStr(jkt) ? jkt : null;
  }

  function typeOk(name, value) {
    if (name === "exp" || name === "nbf" || name === "iat") return isNumber(value);
    if (name === "aud") return isStr(value) || (Array.isArray(value) && value.every(isStr));
    return isStr(value);
  }

  function checkPayload(payload, now, out) {
    for (const [name, wanted] of T.claimTypes) {
      if (payload.has(name) && !typeOk(name, payload.get(name))) {
        out.add("claim_type", "payload", `/${name}`, `${name} has the wrong JSON type (RFC 7519 wants ${wanted})`);
      }
    }
    const exp = payload.get("exp");
    const nbf = payload.get("nbf");
    const iat = payload.get("iat");
    if (!payload.has("exp")) out.add("exp_missing", "payload", "/exp", "the token has no exp: it never expires");
    else if (isNumber(exp)) {
      const expires = num(exp);
      const startName = isNumber(iat) ? "iat" : isNumber(nbf) ? "nbf" : null;
      const lifetime = startName !== null ? expires - num(payload.get(startName)) : expires - now;
      if (startName !== null) {
        if (lifetime > T.maxLifetime) {
          out.add(
            "lifetime_too_long",
            "payload",
            "/exp",
            `the token is valid for ${formatDuration(lifetime)} (from ${startName} to exp), more than 15 minutes`,
          );
        }
      } else if (expires - now > T.maxLifetime) {
        out.add(
          "lifetime_too_long",
          "payload",
          "/exp",
          `the token has no iat or nbf and is valid for ${formatDuration(expires - now)} more, more than 15 minutes`,
        );
      }
      if (dpopJkt(payload) !== null && lifetime > T.maxLifetime) {
        out.add(
          "dpop_long_lived",
          "payload",
          "/cnf/jkt",
          `the token is DPoP-bound and valid for ${formatDuration(lifetime)}: proofs made in advance by a script that briefly ran in the client work as long, unless the servers require nonces (RFC 9449 section 11.2)`,
        );
      }
      if (expires <= now) out.add("expired", "payload", "/exp", `the token expired ${formatDuration(now - expires)} ago`);
    }
    if (isNumber(nbf) && num(nbf) > now) {
      out.add("not_yet_valid", "payload", "/nbf", `the token is not valid for another ${formatDuration(num(nbf) - now)} (nbf)`);
    }
    if (isNumber(iat) && num(iat) > now) {
      out.add("iat_in_future", "payload", "/iat", `iat is ${formatDuration(num(iat) - now)} in the future`);
    }
    if (!payload.has("iss")) out.add("iss_missing", "payload", "/iss", "the token has no iss: verifiers cannot check who issued it");
    if (!payload.has("aud")) out.add("aud_missing", "payload", "/aud", "the token has no aud: any service that trusts the issuer accepts it");
    if (!payload.has("jti")) out.add("jti_missing", "payload", "/jti", "the token has no jti: it cannot be revoked on its own");
    for (const f of lintClaims(payload)) {
      out.findings.push({
        code: f.code,
        severity: f.severity,
        part: "payload",
        path: f.path,
        message: f.message,
        fix: T.catalog[f.code].fix,
      });
    }
  }

  function times(payload, now) {
    const result = [];
    if (payload === null) return result;
    for (const name of ["iat", "nbf", "exp"]) {
      const value = payload.get(name);
      if (isNumber(value)) {
        const n = num(value);
        let iso = null;
        if (Math.abs(n) <= 8.64e12) iso = new Date(n * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
        result.push({ name, value: n, iso, relative: n - now });
      }
    }
    return result;
  }

  /**
   * Audit a token as `jwtwarden inspect` does (without keys). `now` is Unix seconds.
   * Returns {size, header, payload, signature, findings, times}; never throws for bad input.
   */
  function audit(token, options) {
    const now = options && typeof options.now === "number" ? options.now : Date.now() / 1000;
    const out = collector();
    let header = null;
    let payload = null;
    let signature = null;
    const text = String(token);
    const segments = split(text, out);
    if (segments !== null) {
      header = decodeObject(segments[0], "header", out);
      payload = decodeObject(segments[1], "payload", out);
      signature = decodeBytes(segments[2], "signature", out);
      if (header !== null) {
        checkHeader(header, out);
        if (payload !== null) checkHmacAudience(header, payload, out);
      }
      if (signature !== null) {
        const algNone = out.findings.some((f) => f.code === "alg_none");
        checkSignature(header, signature, algNone, out);
      }
      if (payload !== null) checkPayload(payload, now, out);
    }
    return { now, size: cpLength(text), header, payload, signature, findings: out.findings, times: times(payload, now) };
  }

  /** The finding for a failed verification, appended after the others (as inspect does). */
  function verificationFinding(verification) {
    const spec = T.catalog.verification_failed;
    return {
      code: "verification_failed",
      severity: spec.severity,
      part: verification.part,
      path: verification.path || "",
      message: `the strict verifier refused the token: ${verification.code} (${verification.error}): ${verification.message}`,
      fix: spec.fix,
    };
  }

  /** Payload pointers whose values the linter flagged (to mask), with the code. */
  const LINT_CODES = new Set([
    ...Object.values(L.hits).map((h) => h[0]),
    ...L.prefixedSpecs.map((s) => s[1]),
  ]);
  function maskedPaths(findings) {
    const paths = new Map();
    for (const f of findings) {
      if (f.part === "payload" && f.code !== "too_deep" && LINT_CODES.has(f.code) && !paths.has(f.path)) {
        paths.set(f.path, f.code);
      }
    }
    return paths;
  }

  const INVISIBLE = /[\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g;
  const quote = (s) =>
    JSON.stringify(s).replace(INVISIBLE, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));

  /** Pretty JSON of a parsed value; masked pointers show "<masked: CODE>". */
  function toJsonText(value, masked, path, indent) {
    path = path || "";
    indent = indent || "";
    if (masked && path !== "" && masked.has(path)) return quote(T.mask.replace("{code}", masked.get(path)));
    const inner = indent + "  ";
    if (value instanceof Map) {
      if (!value.size) return "{}";
      const items = [];
      for (const [k, v] of value) items.push(`${inner}${quote(k)}: ${toJsonText(v, masked, `${path}/${pointerToken(k)}`, inner)}`);
      return `{\n${items.join(",\n")}\n${indent}}`;
    }
    if (Array.isArray(value)) {
      if (!value.length) return "[]";
      const items = value.map((v, i) => `${inner}${toJsonText(v, masked, `${path}/${i}`, inner)}`);
      return `[\n${items.join(",\n")}\n${indent}]`;
    }
    if (value instanceof JsonFloat) return value.raw;
    if (isStr(value)) return quote(value);
    return String(value);
  }

  // ----------------------------------------------------------------------- keys (keys.py, jose/jwk.py)

  const subtle = () => {
    if (!root.crypto || !root.crypto.subtle) {
      throw new JoseError("Unavailable", "webcrypto_unavailable", "WebCrypto is not available: open the page over https or on localhost");
    }
    return root.crypto.subtle;
  };
  const PRIVATE_MEMBERS = { oct: ["k"], RSA: ["d", "p", "q", "dp", "dq", "qi", "oth"], EC: ["d"], OKP: ["d"] };
  const THUMBPRINT_MEMBERS = { oct: ["k", "kty"], RSA: ["e", "kty", "n"], EC: ["crv", "kty", "x", "y"], OKP: ["crv", "kty", "x"] };
  const COORDINATE = { "P-256": 32, "P-384": 48, "P-521": 66 };

  function member(jwk, name, required) {
    const v = jwk[name];
    if (v === undefined || v === null) {
      if (required) throw invalidKey(`JWK member ${pyRepr(name)} is missing`);
      return null;
    }
    if (!isStr(v)) throw invalidKey(`JWK member ${pyRepr(name)} must be a string`);
    return v;
  }
  function bytesMember(jwk, name) {
    try {
      return b64urlDecode(member(jwk, name, true));
    } catch (e) {
      if (e.code === "malformed") throw invalidKey(`JWK member ${pyRepr(name)} is not base64url`);
      throw e;
    }
  }

  async function thumbprint(members) {
    const canonical = {};
    for (const name of THUMBPRINT_MEMBERS[members.kty]) canonical[name] = members[name];
    const digest = await subtle().digest("SHA-256", UTF8_ENCODER.encode(JSON.stringify(canonical)));
    return b64urlEncode(new Uint8Array(digest));
  }

  const ANY_PRIVATE_MEMBER = ["d", "p", "q", "dp", "dq", "qi", "k", "oth"];

  /**
   * What a DPoP proof (header typ "dpop+jwt", RFC 9449 section 4.2) says, decoded and NOT
   * verified: htm, htu, iat (and how old it is), jti, ath, nonce, and the RFC 7638 thumbprint
   * of the public key in its jwk header (what a bound token's cnf.jkt must equal). null when
   * the report is not of a proof. Async: the thumbprint is a SHA-256 (WebCrypto).
   */
  async function dpopProof(report, options) {
    const header = report.header;
    if (header === null || header.get("typ") !== "dpop+jwt") return null;
    const now = options && typeof options.now === "number" ? options.now : report.now;
    const payload = report.payload;
    const claim = (name) => (payload === null ? undefined : payload.get(name));
    const text = (name) => (isStr(claim(name)) ? claim(name) : null);
    const iat = claim("iat");
    const jwk = header.get("jwk");
    let jkt = null;
    let keyProblem = "no jwk header";
    const privateMembers = [];
    if (jwk instanceof Map) {
      for (const name of ANY_PRIVATE_MEMBER) if (jwk.has(name)) privateMembers.push(name);
      const kty = jwk.get("kty");
      const required = isStr(kty) && Object.hasOwn(THUMBPRINT_MEMBERS, kty) ? THUMBPRINT_MEMBERS[kty] : null;
      if (required === null) keyProblem = "the jwk has no known kty";
      else if (!required.every((name) => isStr(jwk.get(name)))) keyProblem = "the jwk lacks a required member";
      else if (cryptoAvailable()) {
        const members = {};
        for (const name of required) members[name] = jwk.get(name);
        jkt = await thumbprint(members);
        keyProblem = null;
      } else keyProblem = "WebCrypto is unavailable (HTTPS or localhost only)";
    }
    const alg = header.get("alg");
    return {
      alg: isStr(alg) ? alg : null,
      htm: text("htm"),
      htu: text("htu"),
      iat: isNumber(iat) ? num(iat) : null,
      age: isNumber(iat) ? now - num(iat) : null,
      jti: text("jti"),
      ath: text("ath"),
      nonce: text("nonce"),
      jkt,
      keyProblem,
      privateMembers,
    };
  }

  function cryptoAvailable() {
    return Boolean(root.crypto && root.crypto.subtle);
  }

  function bitLength(bytes) {
    let i = 0;
    while (i < bytes.length && bytes[i] === 0) i++;
    if (i === bytes.length) return 0;
    return (bytes.length - i - 1) * 8 + (32 - Math.clz32(bytes[i]));
  }

  function importParams(spec) {
    switch (spec.family) {
      case "HMAC":
        return { name: "HMAC", hash: spec.hash };
      case "RSASSA-PKCS1-v1_5":
        return { name: "RSASSA-PKCS1-v1_5", hash: spec.hash };
      case "RSASSA-PSS":
        return { name: "RSA-PSS", hash: spec.hash };
      case "ECDSA":
        return { name: "ECDSA", namedCurve: spec.curve };
      default:
        return { name: "Ed25519" };
    }
  }

  function checkKty(spec, alg, kty) {
    if (spec.kty === kty) return;
    if (kty === "oct") throw invalidKey(`${alg} is not an HMAC algorithm; a secret cannot be used with it`);
    if (spec.kty === "oct") throw invalidKey(`${alg} is an HMAC algorithm; use HMACKey with a secret`);
    throw invalidKey(`${alg} needs an ${ {RSA: "RSA", EC: "EC", OKP: "Ed25519"}[spec.kty] } key`);
  }

  /**
   * One JWK to a verification key {kid, alg, kty, cryptoKey, modulusBytes}. `alg` binds a
   * JWK without one (they must agree when both are given). Private members are refused,
   * except the secret of an "oct" key when `allowSecret`.
   */
  async function keyFromJwk(jwk, options) {
    const opts = options || {};
    if (jwk === null || typeof jwk !== "object" || Array.isArray(jwk)) throw invalidKey("a JWK must be a JSON object");
    const kty = jwk.kty;
    if (!["oct", "RSA", "EC", "OKP"].includes(kty)) throw invalidKey("JWK 'kty' must be one of oct, RSA, EC, OKP");
    const privateNames = PRIVATE_MEMBERS[kty].filter((n) => Object.prototype.hasOwnProperty.call(jwk, n));
    if (privateNames.length && !(kty === "oct" && opts.allowSecret)) {
      throw invalidKey("private key members are not allowed in a key set loaded for verification");
    }
    const jwkAlg = member(jwk, "alg", false);
    const kid = member(jwk, "kid", false);
    const use = member(jwk, "use", false);
    const keyOps = jwk.key_ops;
    if (keyOps !== undefined && keyOps !== null) {
      if (!Array.isArray(keyOps) || !keyOps.every(isStr) || new Set(keyOps).size !== keyOps.length) {
        throw invalidKey("JWK 'key_ops' must be a list of distinct strings");
      }
    }
    if (jwkAlg !== null && opts.alg && jwkAlg !== opts.alg) throw invalidKey(`the JWK is for ${jwkAlg}, not ${opts.alg}`);
    const alg = jwkAlg || opts.alg || null;
    if (alg === null) throw invalidKey("the JWK has no 'alg' and none was given; a key needs one algorithm");
    if (!Object.prototype.hasOwnProperty.call(T.algorithms, alg)) throw invalidKey(`unsupported algorithm ${pyRepr(alg)}`);
    if (use !== null && use !== "sig") throw invalidKey("the JWK is not a signature key (use != 'sig')");
    if (keyOps && !keyOps.includes("sign") && !keyOps.includes("verify")) {
      throw invalidKey("the JWK's key_ops allow neither sign nor verify");
    }
    const spec = T.algorithms[alg];
    const members = { kty };
    let format = "jwk";
    let material;
    let modulusBytes = 0;
    if (kty === "oct") {
      const secret = bytesMember(jwk, "k");
      checkKty(spec, alg, kty);
      if (secret.length * 8 < spec.minKeyBits) {
        throw weakKey(`${alg} needs a secret of at least ${spec.minKeyBits / 8} bytes (got ${secret.length})`);
      }
      members.k = jwk.k;
      format = "raw";
      material = secret;
    } else if (kty === "RSA") {
      const n = bytesMember(jwk, "n");
      const e = bytesMember(jwk, "e");
      if (!n.length || !e.length) throw invalidKey("invalid RSA public key");
      checkKty(spec, alg, kty);
      const bits = bitLength(n);
      if (bits < spec.minKeyBits) throw weakKey(`${alg} needs an RSA key of at least ${spec.minKeyBits} bits`);
      modulusBytes = Math.ceil(bits / 8);
      Object.assign(members, { n: jwk.n, e: jwk.e });
      material = { kty, n: jwk.n, e: jwk.e, ext: true };
    } else if (kty === "EC") {
      const crv = member(jwk, "crv", true);
      if (!Object.prototype.hasOwnProperty.call(COORDINATE, crv)) throw invalidKey("EC 'crv' must be P-256, P-384 or P-521");
      for (const name of ["x", "y"]) {
        if (bytesMember(jwk, name).length !== COORDINATE[crv]) throw invalidKey(`JWK member ${pyRepr(name)} must be ${COORDINATE[crv]} bytes`);
      }
      checkKty(spec, alg, kty);
      if (spec.curve !== crv) throw weakKey(`${alg} needs a key on ${spec.curve}`);
      Object.assign(members, { crv, x: jwk.x, y: jwk.y });
      material = { kty, crv, x: jwk.x, y: jwk.y, ext: true };
    } else {
      if (member(jwk, "crv", true) !== "Ed25519") throw invalidKey("OKP 'crv' must be Ed25519 (the only signing curve supported)");
      if (bytesMember(jwk, "x").length !== 32) throw invalidKey("JWK member 'x' must be 32 bytes");
      checkKty(spec, alg, kty);
      Object.assign(members, { crv: "Ed25519", x: jwk.x });
      material = { kty, crv: "Ed25519", x: jwk.x, ext: true };
    }
    let cryptoKey;
    try {
      cryptoKey = await subtle().importKey(format, material, importParams(spec), false, ["verify"]);
    } catch (e) {
      if (e instanceof JoseError) throw e;
      throw invalidKey(`WebCrypto refused the key (${e.name})`);
    }
    return { kid: kid || opts.kid || (await thumbprint(members)), alg, kty, cryptoKey, modulusBytes };
  }

  function keySet(keys) {
    const byKid = new Map();
    for (const key of keys) {
      if (byKid.has(key.kid)) throw invalidKey(`duplicate kid ${pyRepr(key.kid)} in the key set`);
      byKid.set(key.kid, key);
    }
    return { keys, byKid };
  }

  /** A JWKS (object or JSON text) to a key set; "use": "enc" keys are skipped. */
  async function keysFromJwks(jwks, options) {
    let data = jwks;
    if (isStr(data)) {
      try {
        data = JSON.parse(data);
      } catch (e) {
        throw invalidKey("the JWKS is not valid JSON");
      }
    }
    if (data === null || typeof data !== "object" || !Array.isArray(data.keys)) {
      throw invalidKey("a JWKS is an object with a 'keys' array");
    }
    const keys = [];
    for (const jwk of data.keys) {
      if (jwk && typeof jwk === "object" && jwk.use === "enc") continue;
      keys.push(await keyFromJwk(jwk, { allowSecret: options && options.allowSecret }));
    }
    if (!keys.length) throw invalidKey("the JWKS has no signature key");
    return keySet(keys);
  }

  /**
   * What a person pasted: a JWKS, a JWK or a PEM public key (SPKI). `alg` binds a key that
   * does not name one; `kid` names a key that has none (the token's kid, as inspect --key).
   */
  async function keysFromText(text, options) {
    const opts = options || {};
    const trimmed = String(text).trim();
    if (trimmed.startsWith("-----BEGIN")) return keySet([await keyFromPem(trimmed, opts.alg, opts.kid)]);
    let data;
    try {
      data = JSON.parse(trimmed);
    } catch (e) {
      throw invalidKey("paste a JWK, a JWKS or a PEM public key");
    }
    if (data && typeof data === "object" && Array.isArray(data.keys)) return keysFromJwks(data, { allowSecret: true });
    return keySet([await keyFromJwk(data, { alg: opts.alg, kid: opts.kid, allowSecret: true })]);
  }

  async function keyFromPem(pem, alg, kid) {
    if (/PRIVATE KEY/.test(pem)) throw invalidKey("this is a private key: paste the public key only");
    if (/CERTIFICATE/.test(pem)) throw invalidKey("paste the public key (BEGIN PUBLIC KEY), not a certificate");
    const m = /^-----BEGIN PUBLIC KEY-----([\s\S]*?)-----END PUBLIC KEY-----$/.exec(pem);
    if (!m) throw invalidKey("a PEM public key is '-----BEGIN PUBLIC KEY-----' (SPKI)");
    if (!alg) throw invalidKey("a PEM key does not say its algorithm; choose one");
    const spec = T.algorithms[alg];
    if (!spec) throw invalidKey(`unsupported algorithm ${pyRepr(alg)}`);
    if (spec.kty === "oct") throw invalidKey(`${alg} is an HMAC algorithm; use HMACKey with a secret`);
    let der;
    try {
      der = Uint8Array.from(atob(m[1].replace(/\s+/g, "")), (c) => c.charCodeAt(0));
    } catch (e) {
      throw invalidKey("the PEM body is not base64");
    }
    let cryptoKey;
    try {
      cryptoKey = await subtle().importKey("spki", der, importParams(spec), true, ["verify"]);
    } catch (e) {
      throw invalidKey(`not a PEM key this algorithm can use (${e.name})`);
    }
    const jwk = await subtle().exportKey("jwk", cryptoKey);
    return keyFromJwk(
      Object.fromEntries(Object.entries(jwk).filter(([k]) => ["kty", "n", "e", "crv", "x", "y"].includes(k))),
      { alg, kid },
    );
  }

  /** An HMAC secret typed as text (its UTF-8 bytes) for HS256/384/512. */
  async function keysFromSecret(secret, alg, kid) {
    const spec = T.algorithms[alg];
    if (!spec || spec.kty !== "oct") throw invalidKey(`${alg} is not an HMAC algorithm; a secret cannot be used with it`);
    const bytes = UTF8_ENCODER.encode(String(secret));
    return keySet([await keyFromJwk({ kty: "oct", k: b64urlEncode(bytes) }, { alg, kid, allowSecret: true })]);
  }

  // ----------------------------------------------------------------------- verification (verify.py)

  const UNPINNED = "\u0000jwtwarden: no value to compare with";

  function fail(errorClass, code, message, extra) {
    throw new JoseError(errorClass, code, message, extra);
  }
  const claimError = (cls, code, claim, message) => fail(cls, code, message || `claim ${pyRepr(claim)} failed validation (${code})`, { claim });
  const malformedClaim = (claim) => fail("MalformedClaim", "malformed", `claim ${pyRepr(claim)} has the wrong type`, { claim });
  const missingClaim = (claim) => fail("MissingClaim", "missing_claim", `required claim ${pyRepr(claim)} is missing`, { claim });

  function checkHeaderRules(header) {
    const alg = header.get("alg");
    if (!isStr(alg)) throw malformed("header 'alg' is missing or not a string");
    for (const name of header.keys()) {
      if (Object.prototype.hasOwnProperty.call(T.refusedHeaders, name)) {
        fail("UnsupportedHeader", "unsupported_header", `header ${pyRepr(name)}: ${T.refusedHeaders[name]}`, { header: name });
      }
      if (T.keyHeaders.includes(name)) {
        fail("UnsupportedHeader", "unsupported_header", `header ${pyRepr(name)} would name its own key; refused`, { header: name });
      }
    }
    for (const name of ["kid", "typ", "cty"]) {
      const value = header.get(name);
      if (value !== undefined && value !== null && !isStr(value)) throw malformed(`header ${pyRepr(name)} must be a string`);
      if (name === "cty" && isStr(value) && mediaType(value) === "jwt") {
        fail("UnsupportedHeader", "unsupported_header", "nested JWTs are not accepted", { header: "cty" });
      }
    }
    return alg;
  }

  function checkClaims(claims, now, leeway, issuers, audiences) {
    const exp = claims.get("exp");
    if (!isNumber(exp)) {
      if (exp === undefined) missingClaim("exp");
      malformedClaim("exp");
    }
    if (now - leeway >= num(exp)) claimError("Expired", "expired", "exp", "the token has expired");
    if (claims.has("nbf")) {
      const nbf = claims.get("nbf");
      if (!isNumber(nbf)) malformedClaim("nbf");
      if (num(nbf) > now + leeway) claimError("NotYetValid", "not_yet_valid", "nbf", "the token is not valid yet");
    }
    if (claims.has("iat")) {
      const iat = claims.get("iat");
      if (!isNumber(iat)) malformedClaim("iat");
      if (num(iat) > now + leeway) claimError("IssuedInFuture", "issued_in_future", "iat", "the token claims to be issued in the future");
    }
    const iss = claims.get("iss");
    if (!isStr(iss)) {
      if (iss === undefined) missingClaim("iss");
      malformedClaim("iss");
    }
    if (!issuers.includes(iss)) claimError("BadIssuer", "bad_issuer", "iss", "the token's issuer is not the expected one");
    const aud = claims.get("aud");
    if (isStr(aud)) {
      if (!audiences.includes(aud)) claimError("BadAudience", "bad_audience", "aud", "the token is not meant for this audience");
    } else if (Array.isArray(aud)) {
      if (!aud.every(isStr)) malformedClaim("aud");
      if (!aud.some((a) => audiences.includes(a))) claimError("BadAudience", "bad_audience", "aud", "the token is not meant for this audience");
    } else if (aud === undefined) {
      missingClaim("aud");
    } else {
      malformedClaim("aud");
    }
    for (const name of ["sub", "jti"]) if (claims.has(name) && !isStr(claims.get(name))) malformedClaim(name);
  }

  function expectedIssuer(payload) {
    const iss = payload ? payload.get("iss") : undefined;
    return isStr(iss) && iss ? [iss] : [UNPINNED];
  }
  function expectedAudience(payload) {
    const aud = payload ? payload.get("aud") : undefined;
    if (isStr(aud) && aud) return [aud];
    if (Array.isArray(aud) && aud.length && aud.every((a) => isStr(a) && a)) return aud;
    return [UNPINNED];
  }

  function failureLocation(e) {
    if (e.claim !== undefined && e.errorClass !== "BadType") return ["payload", `/${e.claim}`];
    if (e.errorClass === "BadType") return ["header", "/typ"];
    if (e.errorClass === "UnsupportedHeader") return ["header", `/${e.header}`];
    if (e.errorClass === "AlgorithmNotAllowed") return ["header", "/alg"];
    if (e.errorClass === "UnknownKey") return ["header", "/kid"];
    if (e.errorClass === "BadSignature") return ["signature", ""];
    return ["token", ""];
  }

  async function verifySignature(key, data, sig) {
    const spec = T.algorithms[key.alg];
    const s = subtle();
    switch (spec.family) {
      case "HMAC":
        return s.verify({ name: "HMAC" }, key.cryptoKey, sig, data);
      case "ECDSA":
        if (sig.length !== 2 * spec.coordinateSize) return false;
        return s.verify({ name: "ECDSA", hash: spec.hash }, key.cryptoKey, sig, data);
      case "EdDSA":
        if (sig.length !== 64) return false;
        return s.verify({ name: "Ed25519" }, key.cryptoKey, sig, data);
      case "RSASSA-PSS":
        if (sig.length !== key.modulusBytes) return false;
        return s.verify({ name: "RSA-PSS", saltLength: spec.hashBytes }, key.cryptoKey, sig, data);
      default:
        if (sig.length !== key.modulusBytes) return false;
        return s.verify({ name: "RSASSA-PKCS1-v1_5" }, key.cryptoKey, sig, data);
    }
  }

  /**
   * Verify as jwtwarden.Verifier does, in the same order, with the algorithms of `keys` as
   * the allowlist. options: now, leeway (30), issuer / audience (arrays; default: the
   * token's own, reported as not pinned), typ. Resolves to
   * {verified, code, error, message, part, path, kid, alg, issuerPinned, audiencePinned}.
   */
  async function verify(token, keys, options) {
    const opts = options || {};
    const now = typeof opts.now === "number" ? opts.now : Date.now() / 1000;
    const leeway = typeof opts.leeway === "number" ? opts.leeway : T.defaultLeeway;
    const issuerPinned = Boolean(opts.issuer && opts.issuer.length);
    const audiencePinned = Boolean(opts.audience && opts.audience.length);
    const result = { verified: false, code: null, error: null, message: null, part: null, path: null, kid: null, alg: null, issuerPinned, audiencePinned };
    const allowed = new Set(keys.keys.map((k) => k.alg));
    try {
      const text = String(token);
      if (cpLength(text) > T.maxTokenSize) fail("TokenTooLarge", "token_too_large", `token longer than ${T.maxTokenSize} bytes`);
      if (!isAscii(text)) throw malformed("token has non-ASCII characters");
      const parts = text.split(".");
      if (parts.length !== 3) throw malformed("a compact JWS has exactly three segments");
      const header = parseObject(b64urlDecode(parts[0]), "header");
      const alg = checkHeaderRules(header);
      if (!allowed.has(alg)) fail("AlgorithmNotAllowed", "alg_not_allowed", "the token's algorithm is not in the allowlist");
      if (opts.typ) {
        const typ = header.get("typ");
        if (!isStr(typ) || mediaType(typ) !== mediaType(opts.typ)) fail("BadType", "bad_type", "the token's 'typ' header is not the required type", { claim: "typ" });
      }
      const kid = header.get("kid");
      let key;
      if (kid !== undefined && kid !== null) {
        key = keys.byKid.get(kid);
        if (!key) fail("UnknownKey", "unknown_key", "no key with the token's kid");
      } else {
        const candidates = keys.keys.filter((k) => k.alg === alg);
        if (candidates.length !== 1) fail("UnknownKey", "unknown_key", "the token has no kid and the key set has no single key for its alg");
        key = candidates[0];
      }
      if (key.alg !== alg) fail("AlgorithmNotAllowed", "alg_not_allowed", "the token's algorithm is not the one bound to its key");
      const payloadBytes = b64urlDecode(parts[1]);
      const signature = b64urlDecode(parts[2]);
      const signingInput = UTF8_ENCODER.encode(`${parts[0]}.${parts[1]}`);
      if (!(await verifySignature(key, signingInput, signature))) fail("BadSignature", "bad_signature", "bad signature");
      result.kid = key.kid;
      result.alg = key.alg;
      if (!payloadBytes.length) throw malformed("a JWT payload cannot be empty");
      const claims = parseObject(payloadBytes, "payload");
      const issuers = issuerPinned ? opts.issuer : expectedIssuer(claims);
      const audiences = audiencePinned ? opts.audience : expectedAudience(claims);
      checkClaims(claims, now, leeway, issuers, audiences);
      result.verified = true;
    } catch (e) {
      if (!(e instanceof JoseError)) throw e;
      const [part, path] = failureLocation(e);
      Object.assign(result, { code: e.code, error: e.errorClass, message: e.message, part, path });
    }
    return result;
  }

  root.JwtwardenAudit = Object.freeze({
    audit,
    dpopProof,
    dpopJkt,
    verify,
    verificationFinding,
    keysFromJwks,
    keysFromText,
    keysFromSecret,
    maskedPaths,
    toJsonText,
    formatDuration,
    lintClaims,
    JoseError,
    tables: T,
  });
})(globalThis);
