"""What an API imports to accept jwtwarden's access tokens (a resource server).

``server`` holds :class:`~jwtwarden.resource.server.ResourceServer`, ``jwks_client`` the cached
remote key set, ``feed_client`` the revocation-feed follower, and ``asgi``, ``fastapi`` and
``wsgi`` the framework integrations. Works with the base install (plus the framework it
integrates with); it never imports :mod:`jwtwarden.service` or the service's dependencies.
"""
