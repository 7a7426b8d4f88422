"""A refresh token kept on disk across restarts: :class:`RefreshTokenFile`."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path

__all__ = ["RefreshTokenFile"]

_MAX_TOKEN = 1024


class RefreshTokenFile:
    """One refresh token in a file only its owner can read (mode 0600).

    :meth:`save` never rewrites the file in place: it writes a new file beside it (created
    with ``O_CREAT | O_EXCL | O_NOFOLLOW``, mode 0600), flushes it to disk (``fsync``),
    renames it over the old one and flushes the directory. A crash leaves the old token or
    the new one, never a torn file, and a symlink planted at either name is never followed.

    :meth:`load` refuses a symlink, a file that is not a regular file, a file owned by
    another user, and a file that group or others may read or write (``PermissionError``,
    as ssh does with its keys): a token another account could have read is not used.

    What a crash between a rotation and the write means: the file still holds the token
    the service has just spent. Presented again, it is *reuse*. With the service's grace
    window (``JWTWARDEN_GRACE_WINDOW`` > 0) and a restart inside it, the service answers
    with the same successor again and the session goes on. Past the window, or with the
    default strict window of 0, the service revokes the session and the client gets
    :class:`~jwtwarden.errors.RefreshReused`: the user logs in again.
    """

    __slots__ = ("_path",)

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path).expanduser()

    @property
    def path(self) -> Path:
        return self._path

    def load(self) -> str | None:
        """The stored token, or None when there is no file (or it is empty)."""
        try:
            fd = os.open(self._path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return None
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise PermissionError(f"{self._path} is a symlink; refusing to read a token through it") from None
            raise
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise PermissionError(f"{self._path} is not a regular file")
            if info.st_uid != os.geteuid():
                raise PermissionError(f"{self._path} belongs to another user")
            if info.st_mode & 0o077:
                raise PermissionError(f"{self._path} is readable or writable by others "
                                      f"(mode {stat.S_IMODE(info.st_mode):o}); it must be 0600")
            data = os.read(fd, _MAX_TOKEN + 2)
        finally:
            os.close(fd)
        token = data.decode("ascii", errors="replace").strip()
        if len(data) > _MAX_TOKEN + 1 or not token.isprintable() or " " in token:
            raise ValueError(f"{self._path} does not hold a refresh token")
        return token or None

    def save(self, token: str) -> None:
        """Replace the stored token atomically and durably (see the class docstring)."""
        if not isinstance(token, str) or not token or len(token) > _MAX_TOKEN \
                or not token.isascii() or not token.isprintable() or " " in token:
            raise ValueError("not a refresh token")
        directory = self._path.parent
        temp = directory / f".{self._path.name}.{secrets.token_hex(8)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(temp, flags, 0o600)  # born 0600 (a umask only takes bits away)
        try:
            try:
                view = (token + "\n").encode("ascii")
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, self._path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        _sync_directory(directory)

    def clear(self) -> None:
        """Delete the stored token (a logout, or a token the service refused for good)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path)
            _sync_directory(self._path.parent)

    def __repr__(self) -> str:
        return f"RefreshTokenFile({str(self._path)!r})"


def _sync_directory(directory: Path) -> None:
    """Make a rename or unlink in ``directory`` durable (where the platform allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover - e.g. a directory that cannot be opened on this OS
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
