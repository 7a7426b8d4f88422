"""The token service (``jwtwarden serve``): the only holder of the private signing keys.

``app`` is the FastAPI application, ``config`` its configuration, ``cookies`` and ``ratelimit``
the browser and login defences, ``sessions/`` refresh tokens, rotation, families, revocation and
the key ring, ``storage/`` the SQL schema, migrations, database and Redis access. Needs the
``server`` extra; nothing in :mod:`jwtwarden.resource` or :mod:`jwtwarden.client` imports it.
"""
