"""What an API imports to accept jwtwarden's access tokens (a resource server).

``server`` holds :class:`~jwtwarden.resource.server.ResourceServer`, ``jwks_client`` the cached
remote key set, ``feed_client`` the revocation-feed follower, ``redis_follower`` the Redis
follower (with ``redis_wire``, the format it shares with the service, and ``follower``, what
both followers share), and ``asgi``, ``fastapi`` and ``wsgi`` the framework integrations.
Works with the base install (plus the framework it integrates with; following Redis needs the
``redis`` extra, imported only then); it never imports :mod:`jwtwarden.service` or the
service's dependencies.
"""
