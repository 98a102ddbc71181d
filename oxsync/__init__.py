"""oxsync: groupware sync server (Exchange ActiveSync, Open-Xchange WebDAV/XML, CalDAV/CardDAV)."""


def version() -> str:
    """The installed distribution's version (setup.cfg), or the source tree's when not installed."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("oxsync")
    except PackageNotFoundError:
        return "0+source"
