"""Sessions: refresh-token families, rotation with reuse detection, revocation, signing keys.

This layer decides; storage (``jwtwarden.service.storage``) only persists, and the web layer only
translates HTTP. Every state change of a session happens inside one database transaction.
"""
