"""The JOSE wire format: bytes and JSON in, ``cryptography`` primitives, no policy.

Nothing here knows about time, networks, databases or which algorithms a deployment
allows; that is the policy layer's job (``jwtwarden.verify``, ``jwtwarden.issue``).

- :mod:`~jwtwarden.jose.b64` strict base64url
- :mod:`~jwtwarden.jose.strict_json` strict JSON objects
- :mod:`~jwtwarden.jose.algorithms` the immutable algorithm table and prepared primitives
- :mod:`~jwtwarden.jose.jwk` JWK import/export and RFC 7638 thumbprints
- :mod:`~jwtwarden.jose.jws` compact JWS parsing and serialisation
"""
