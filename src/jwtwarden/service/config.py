"""The token service's configuration: defaults, a TOML file, ``JWTWARDEN_*`` variables.

Precedence, lowest first: built-in defaults, the TOML file (``JWTWARDEN_CONFIG`` or
``--config``; keys are the option names below, e.g. ``access_lifetime = 600``), then the
environment (``JWTWARDEN_ACCESS_LIFETIME=600``). Every value is checked when loaded; a bad
one is a :class:`ConfigError` naming the variable, never a failure later at run time.
A secret option can also be read from a file, ``JWTWARDEN_<NAME>_FILE`` (``JWTWARDEN_KEK_FILE``:
a systemd credential, a mounted secret): a regular file that other users cannot read.
``jwtwarden config show`` prints the result with its sources, secrets masked.
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from jwtwarden.jose.algorithms import ALGORITHMS
from jwtwarden.policy import MAX_LIFETIME

__all__ = ["ConfigError", "Settings", "cores", "load_settings", "mask_url"]

ENV_PREFIX = "JWTWARDEN_"
DAY = 86_400
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
FILE_SUFFIX = "_FILE"
SERVICE_ALGORITHMS = tuple(name for name, alg in ALGORITHMS.items() if alg.kty != "oct")
"""What the token service may sign with: asymmetric algorithms only (resource servers get the
public keys from the JWKS; an HMAC secret would have to be shared with every one of them)."""


class ConfigError(ValueError):
    """A configuration value is missing, malformed or unsafe; the message names it."""


def _int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"expected a whole number, got {text.strip()[:40]!r}") from None


def _float(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"expected a number, got {text.strip()[:40]!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"expected a finite number, got {text.strip()[:40]!r}")
    return value


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


def _list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _opt_str(text: str) -> str | None:
    return text.strip() or None


def _lower(text: str) -> str:
    return text.strip().lower()


def _path(text: str) -> Path:
    return Path(text.strip()).expanduser()


def _opt(parse: Callable[[str], Any], *, secret: bool = False, doc: str = "") -> dict[str, Any]:
    return {"parse": parse, "secret": secret, "doc": doc}


@dataclass(frozen=True)
class Settings:
    """Every option of the token service. Build it with :func:`load_settings`."""

    data_dir: Path = field(default=Path(".jwtwarden"), metadata=_opt(
        _path, doc="directory of the SQLite database (the development KEK file is <data_dir>.kek, beside it)"))
    issuer: str = field(default="http://127.0.0.1:8000", metadata=_opt(
        str, doc="the iss of every token and the base of the metadata document "
        "(default: http://HOST:PORT of the address jwtwarden serve binds, loopback only)"))
    audience: tuple[str, ...] = field(default=("api",), metadata=_opt(
        _list, doc="aud of access tokens (comma-separated for several)"))
    algorithm: str = field(default="ES256", metadata=_opt(
        str, doc="signing algorithm of generated keys (asymmetric: ES*, RS*, PS*, EdDSA)"))
    access_lifetime: int = field(default=MAX_LIFETIME, metadata=_opt(
        _int, doc="access-token lifetime in seconds (300-900)"))
    access_jitter: int = field(default=0, metadata=_opt(
        _int, doc="up to this many seconds are taken off each access token's lifetime at random"))
    refresh_idle_lifetime: int = field(default=7 * DAY, metadata=_opt(
        _int, doc="a refresh token unused for this long expires (seconds)"))
    family_lifetime: int = field(default=30 * DAY, metadata=_opt(
        _int, doc="absolute lifetime of a session, after which the user logs in again"))
    grace_window: float = field(default=0.0, metadata=_opt(
        _float, doc="seconds in which the just-rotated refresh token gets the same successor"))
    database_url: str | None = field(default=None, metadata=_opt(
        _opt_str, secret=True, doc="SQLAlchemy or libpq URL; default: SQLite in data_dir"))
    redis_url: str | None = field(default=None, metadata=_opt(
        _opt_str, secret=True, doc="Redis for the deny list (redis://host:port/db)"))
    revocation_fail_open: bool = field(default=False, metadata=_opt(
        _bool, doc="accept tokens when the deny list is unreachable (logs a warning)"))
    cookie_mode: bool = field(default=False, metadata=_opt(
        _bool, doc="refresh token in an HttpOnly cookie, with CSRF protection"))
    access_cookie: bool = field(default=False, metadata=_opt(
        _bool, doc="in cookie mode, also set the access token as an HttpOnly cookie"))
    allowed_origins: tuple[str, ...] = field(default=(), metadata=_opt(
        _list, doc="origins allowed to make cookie requests (default: the issuer's)"))
    kek: str | None = field(default=None, metadata=_opt(
        _opt_str, secret=True, doc="key-encryption key, 32 bytes base64url; dev default: the file <data_dir>.kek"))
    host: str = field(default="127.0.0.1", metadata=_opt(str, doc="address jwtwarden serve binds"))
    port: int = field(default=8000, metadata=_opt(_int, doc="port jwtwarden serve binds"))
    login_max_failures: int = field(default=5, metadata=_opt(
        _int, doc="failed logins per account per window before 429"))
    login_max_failures_per_address: int = field(default=20, metadata=_opt(
        _int, doc="failed logins per client address per window before 429"))
    login_window: int = field(default=300, metadata=_opt(
        _int, doc="rate-limit window for failed logins (seconds)"))
    trust_proxy_headers: bool = field(default=False, metadata=_opt(
        _bool, doc="take the client address from X-Forwarded-For (behind a proxy only)"))
    jwks_max_age: int = field(default=300, metadata=_opt(
        _int, doc="Cache-Control max-age of the JWKS; a new key is published this long before it signs"))
    key_rotation_interval: int = field(default=0, metadata=_opt(
        _int, doc="rotate the signing key every this many seconds (0: only by command)"))
    # PostgreSQL: connections kept open. Enough for the concurrency one process sees: a
    # connection over the pool size is opened for one request and closed after it (a new
    # server process each time), which under steady load cost more than the request.
    db_pool_size: int = field(default=16, metadata=_opt(_int, doc="database connection pool size"))
    db_max_overflow: int = field(default=4, metadata=_opt(
        _int, doc="connections allowed beyond the pool size, closed after use"))
    db_pool_timeout: float = field(default=5.0, metadata=_opt(
        _float, doc="seconds to wait for a pooled connection"))
    # password hashing (issue #12): argon2id costs (RFC 9106's second recommended option by
    # default) and its own bounded pool, so that logins cannot starve every other request
    argon2_time_cost: int = field(default=3, metadata=_opt(_int, doc="argon2id passes (t)"))
    argon2_memory_cost: int = field(default=65536, metadata=_opt(
        _int, doc="argon2id memory in KiB (m; 65536 = 64 MiB)"))
    argon2_parallelism: int = field(default=4, metadata=_opt(_int, doc="argon2id lanes (p)"))
    hash_threads: int = field(default=0, metadata=_opt(
        _int, doc="threads for password hashing (0: one per core but one)"))
    hash_queue: int = field(default=16, metadata=_opt(
        _int, doc="logins waiting for a hashing thread before 503 + Retry-After"))
    gc_interval: int = field(default=3600, metadata=_opt(
        _int, doc="run garbage collection of expired rows every this many seconds (0: off)"))
    max_body_bytes: int = field(default=65_536, metadata=_opt(
        _int, doc="largest request body accepted"))
    dpop: str = field(default="allowed", metadata=_opt(
        lambda text: text.strip().lower(), doc="DPoP (RFC 9449): 'allowed' binds tokens to the key "
        "of a request's DPoP proof, 'required' refuses token requests without one"))
    dpop_nonce: bool = field(default=False, metadata=_opt(
        _bool, doc="require DPoP server nonces (RFC 9449 section 8) at the token endpoints"))
    docs: bool = field(default=False, metadata=_opt(
        _bool, doc="serve the interactive API docs at /docs and /redoc (assets shipped, no CDN)"))
    log_format: str = field(default="text", metadata=_opt(
        _lower, doc="text, or json: one JSON object per line (event, level, logger, time, request_id)"))
    log_level: str = field(default="info", metadata=_opt(
        _lower, doc="critical, error, warning, info or debug (jwtwarden serve --log-level overrides)"))
    metrics_token: str | None = field(default=None, metadata=_opt(
        _opt_str, secret=True, doc="bearer token that GET /metrics requires (at least 16 "
        "characters); unset: /metrics answers 404"))

    def __post_init__(self) -> None:
        problems = list(self._problems())
        if problems:
            raise ConfigError("; ".join(problems))

    def _problems(self) -> list[str]:
        out: list[str] = []

        def check(ok: bool, name: str, what: str) -> None:
            if not ok:
                out.append(f"{ENV_PREFIX}{name.upper()}: {what}")

        iss = urlsplit(self.issuer)
        check(iss.scheme in ("https", "http") and bool(iss.netloc) and not iss.query
              and not iss.fragment, "issuer", "must be an http(s) URL without query or fragment")
        check(iss.scheme == "https" or (iss.hostname or "") in LOOPBACK_HOSTS,
              "issuer", "must use https except on loopback")
        check(bool(self.audience), "audience", "at least one audience is required")
        check(self.algorithm in ALGORITHMS, "algorithm", f"must be one of {', '.join(SERVICE_ALGORITHMS)}")
        check(self.algorithm not in ALGORITHMS or self.algorithm in SERVICE_ALGORITHMS, "algorithm",
              f"{self.algorithm} is an HMAC algorithm, which the token service cannot use because "
              "resource servers verify its tokens with the public keys of its JWKS and a shared "
              f"secret has none; choose one of {', '.join(SERVICE_ALGORITHMS)}")
        check(300 <= self.access_lifetime <= MAX_LIFETIME, "access_lifetime",
              f"access tokens live 300-{MAX_LIFETIME} s")
        check(0 <= self.access_jitter <= min(60, self.access_lifetime - 300), "access_jitter",
              "must be 0-60 s and keep the lifetime at least 300 s")
        check(3600 <= self.refresh_idle_lifetime <= self.family_lifetime, "refresh_idle_lifetime",
              "must be at least an hour and at most family_lifetime")
        check(self.family_lifetime <= 365 * DAY, "family_lifetime", "must be at most a year")
        check(0 <= self.grace_window <= 60, "grace_window", "must be 0-60 s")
        check(1 <= self.port <= 65535, "port", "must be 1-65535")
        for name in ("login_max_failures", "login_max_failures_per_address", "login_window",
                     "db_pool_size"):
            check(getattr(self, name) >= 1, name, "must be at least 1")
        check(5 <= self.jwks_max_age <= DAY, "jwks_max_age", "must be 5 s to a day")
        check(self.key_rotation_interval == 0
              or self.key_rotation_interval >= 2 * self.jwks_max_age + 2 * self.access_lifetime,
              "key_rotation_interval",
              "must be 0 or at least twice jwks_max_age plus twice access_lifetime")
        # below OWASP's argon2id minimum (m=19 MiB with t=2, p=1) a stolen hash is too cheap
        check(self.argon2_time_cost >= 2 and self.argon2_memory_cost >= 19456, "argon2_memory_cost",
              "argon2id needs at least t=2 and m=19456 KiB (OWASP's minimum)")
        check(1 <= self.argon2_parallelism <= 64, "argon2_parallelism", "must be 1-64")
        check(0 <= self.hash_threads <= 256 and 0 <= self.hash_queue <= 10_000, "hash_threads",
              "hash_threads must be 0-256 (0: automatic) and hash_queue 0-10000")
        check(self.db_max_overflow >= 0 and self.db_pool_timeout > 0, "db_pool_timeout",
              "pool overflow must be >= 0 and the timeout positive")
        check(self.gc_interval >= 0 and 1024 <= self.max_body_bytes <= 1 << 22, "max_body_bytes",
              "gc_interval must be >= 0 and max_body_bytes 1 KiB-4 MiB")
        check(self.access_cookie <= self.cookie_mode, "access_cookie", "needs cookie_mode")
        check(self.log_format in ("text", "json"), "log_format", "must be text or json")
        check(self.log_level in LOG_LEVELS, "log_level", f"must be one of {', '.join(LOG_LEVELS)}")
        check(self.metrics_token is None or (len(self.metrics_token) >= 16
                                             and self.metrics_token.isascii()
                                             and self.metrics_token.isprintable()
                                             and " " not in self.metrics_token),
              "metrics_token", "must be at least 16 printable ASCII characters without spaces")
        check(self.dpop in ("allowed", "required"), "dpop", "must be allowed or required")
        for origin in self.allowed_origins:
            parts = urlsplit(origin)
            check(parts.scheme in ("http", "https") and bool(parts.netloc) and parts.path == "",
                  "allowed_origins", f"{origin!r} is not an origin (scheme://host[:port])")
            # compared byte for byte with the Origin header (CORS, CSRF): written as browsers send it
            check(origin == _serialized_origin(origin), "allowed_origins",
                  f"{origin!r} must be written as browsers send it: {_serialized_origin(origin)!r}")
        return out

    @property
    def sqlite_default(self) -> bool:
        return self.database_url is None

    @property
    def origins(self) -> frozenset[str]:
        """Origins allowed for cookie-authenticated requests."""
        if self.allowed_origins:
            return frozenset(self.allowed_origins)
        iss = urlsplit(self.issuer)
        return frozenset({f"{iss.scheme}://{iss.netloc}"})

    def describe(self, *, show_secrets: bool = False) -> list[tuple[str, str, str]]:
        """(env variable, value, doc) for every option; secrets masked unless asked."""
        rows = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                text = ",".join(value)
            elif value is None:
                text = ""
            else:
                text = str(value)
            if f.metadata["secret"] and text and not show_secrets:
                text = _mask(f.name, text)
            rows.append((ENV_PREFIX + f.name.upper(), text, f.metadata["doc"]))
        return rows


def _serialized_origin(origin: str) -> str:
    """An origin as a browser's ``Origin`` header spells it: lowercase, no default port."""
    parts = urlsplit(origin)
    try:
        port = parts.port
    except ValueError:
        return ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    suffix = f":{port}" if port is not None and port != default else ""
    return f"{parts.scheme.lower()}://{host}{suffix}"


def _mask(name: str, text: str) -> str:
    """URLs keep what locates the server, with every credential masked; other secrets vanish."""
    return mask_url(text) if name.endswith("_url") else "****"


_CREDENTIAL = re.compile(r"pass|pwd|secret|token|key|auth|cred|sig", re.IGNORECASE)


def mask_url(url: str) -> str:
    """``url`` with every credential replaced by ``****``.

    The password of ``user:password@`` (the user stays), and the value of every query
    parameter whose name speaks of a password, secret, token, key, signature or credential
    (``?password=``, ``sslpassword=``, ``access_token=``...). Something that does not parse as
    a URL is masked whole.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "****"
    if not parts.scheme:
        return "****"
    netloc = parts.netloc
    userinfo, at, hostport = netloc.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}:****@{hostport}" if colon else f"{user}@{hostport}"
    query = parts.query
    if query:
        masked = []
        for part in re.split("([&;])", query):
            key, eq, _ = part.partition("=")
            masked.append(f"{key}=****" if eq and _CREDENTIAL.search(unquote(key)) else part)
        query = "".join(masked)
    # put the masked parts back in place (urlunsplit would drop the '//' of sqlite:////path)
    masked_url = url.replace("//" + parts.netloc, "//" + netloc, 1) if netloc != parts.netloc else url
    return masked_url.replace("?" + parts.query, "?" + query, 1) if query != parts.query else masked_url


def load_settings(
    env: Mapping[str, str] | None = None, *, config_file: Path | None = None, **overrides: Any
) -> Settings:
    """Defaults, then the TOML file, then ``JWTWARDEN_*`` variables, then ``overrides``."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    path = config_file or (Path(env[ENV_PREFIX + "CONFIG"]) if env.get(ENV_PREFIX + "CONFIG") else None)
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read the configuration file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
        for key, value in data.items():
            if key not in fields:
                raise ConfigError(f"{path}: unknown option {key!r}")
            values[key] = _from_toml(key, value, fields[key])
    for name, f in fields.items():
        raw = env.get(ENV_PREFIX + name.upper())
        if f.metadata["secret"] and env.get(ENV_PREFIX + name.upper() + FILE_SUFFIX):
            if raw is not None:
                raise ConfigError(f"set {ENV_PREFIX}{name.upper()} or "
                                  f"{ENV_PREFIX}{name.upper()}{FILE_SUFFIX}, not both")
            raw = _secret_file(name, Path(env[ENV_PREFIX + name.upper() + FILE_SUFFIX]))
        if raw is not None:
            try:
                values[name] = f.metadata["parse"](raw)
            except ValueError as exc:
                raise ConfigError(f"{ENV_PREFIX}{name.upper()}: {exc}") from None
    values.update(overrides)
    if "issuer" not in values:
        values["issuer"] = _bound_issuer(values, fields)
    try:
        return Settings(**values)
    except TypeError as exc:
        raise ConfigError(str(exc)) from None


def _secret_file(name: str, path: Path) -> str:
    """The value of ``JWTWARDEN_<NAME>_FILE``: the file's text without its final newline, from a
    regular file others cannot read (a systemd credential, a mounted secret)."""
    variable = f"{ENV_PREFIX}{name.upper()}{FILE_SUFFIX}"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(f"{variable}: cannot read {path} ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{variable}: {path} is not a regular file")
        if info.st_mode & 0o007:
            raise ConfigError(f"{variable}: {path} is readable or writable by every user (mode "
                              f"{stat.S_IMODE(info.st_mode):04o}); make it 0600 or 0400")
        data = os.read(fd, 65_536)
    finally:
        os.close(fd)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{variable}: {path} is not UTF-8 text") from None
    return text.removesuffix("\n").removesuffix("\r")


def default_issuer(host: str, port: int) -> str:
    """``http://HOST:PORT``, the issuer of a service that was given none (IPv6 in brackets)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _bound_issuer(values: Mapping[str, Any], fields: Mapping[str, dataclasses.Field[Any]]) -> str:
    """With no issuer configured, the service is its own issuer at the address it binds, which
    must then be loopback (anywhere else the issuer must be the https URL clients use)."""
    host = values.get("host", fields["host"].default)
    port = values.get("port", fields["port"].default)
    if not isinstance(host, str) or type(port) is not int:
        raise ConfigError("host must be a string and port a whole number")
    if host not in LOOPBACK_HOSTS:
        raise ConfigError(
            f"{ENV_PREFIX}ISSUER is not set and the service binds {host}, which is not loopback: "
            "set it to the https URL clients reach the service at")
    return default_issuer(host, port)


def _from_toml(key: str, value: Any, f: dataclasses.Field[Any]) -> Any:
    """TOML values go through the same parser as the environment's text."""
    if isinstance(value, list):
        value = ",".join(str(v) for v in value)
    elif isinstance(value, bool):
        value = "true" if value else "false"
    elif not isinstance(value, str | int | float):
        raise ConfigError(f"{key}: unsupported TOML value")
    try:
        return f.metadata["parse"](str(value))
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}") from None


def cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1: what ``--workers auto``
    starts and what the password-hashing pool's default leaves one of."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)
