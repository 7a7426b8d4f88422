"""What a client imports to hold and present jwtwarden's tokens.

- :class:`UserSession` / :class:`AsyncUserSession`: a user's session (log in, or adopt a
  pair from ``POST /v1/sessions``) as an :class:`httpx.Auth` that refreshes ahead of expiry,
  one refresh at a time across threads (tasks), and raises the service's refusals as typed
  errors (:class:`~jwtwarden.errors.RefreshReused`, ``RefreshRevoked``...).
- :class:`RefreshTokenFile`: where a session may keep its refresh token across restarts
  (0600, replaced atomically and fsynced on every rotation).
- :class:`ClientCredentials`: an :class:`httpx.Auth` for service-to-service calls (the
  OAuth 2.0 client_credentials grant, with a client secret or a private key), caching the
  token until shortly before it expires.

Like :mod:`jwtwarden.resource`, it depends on the core only and never imports
:mod:`jwtwarden.service` or the service's dependencies.
"""

from jwtwarden.client.credentials import ClientCredentials
from jwtwarden.client.session import AsyncUserSession, UserSession
from jwtwarden.client.store import RefreshTokenFile

__all__ = ["AsyncUserSession", "ClientCredentials", "RefreshTokenFile", "UserSession"]
