"""Command handlers; importing this package registers them all in `oxsync.eas.request.HANDLERS`."""

from oxsync.eas.commands import find, folders, items, mail, ping, provision, settings, sync  # noqa: F401
