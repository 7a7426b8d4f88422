"""``python -m jwtwarden`` is the ``jwtwarden`` command."""

from jwtwarden.cli import main

main()
