"""The HTTP face of jwtwarden: the token service's app, resource-server integrations, the debugger.

Everything here sits on top of the policy and session layers; nothing here does crypto by hand.
"""
