"""What a client imports to hold and present jwtwarden's tokens (empty until the clients land).

Like :mod:`jwtwarden.resource`, it depends on the core only and never imports
:mod:`jwtwarden.service` or the service's dependencies.
"""
