"""Space set aside beside the store, given back to the disk when it fills up.

When the disk fills, the store still has writes it must make: LINK's answers
to requests in flight (without them the messages are sent again after a
restart), receipts an ESME acknowledged (without that they are delivered
again), expiries. The reserve is a pre-allocated file of `size` bytes on the
store's filesystem: the first write that finds the disk full deletes it, so
those writes find room, while the store refuses new work (ESME_RMSGQFUL,
callbacks 503) until the reserve can be taken again.

It is taken again only when twice its size is free, so that a disk with just
the reserve's worth of space does not flap between refusing and accepting.
"""

from __future__ import annotations

import contextlib
import errno
import os

from twisted.logger import Logger

log = Logger()


class Reserve:
    def __init__(self, path: str, size: int) -> None:
        self.path = path
        self.size = size
        self.held = False

    def take(self) -> bool:
        """Allocate the file, if the disk has room for it twice over; whether it is held."""
        if self.held or self.size <= 0:
            self.held = self.size > 0
            return self.held
        directory = os.path.dirname(os.path.abspath(self.path))
        stats = os.statvfs(directory)
        if stats.f_bavail * stats.f_frsize < 2 * self.size:
            return False
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            # Blocks that are really allocated: a sparse file would give nothing back.
            os.posix_fallocate(fd, 0, self.size)
        except OSError as error:
            os.close(fd)
            self._remove()
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                return False
            raise
        os.close(fd)
        self.held = True
        return True

    def release(self) -> bool:
        """Give the space back to the disk; whether there was any to give.

        Also removes a reserve a previous run left behind, so that a start on a
        full disk has room to open the store.
        """
        freed = self.held or os.path.exists(self.path)
        self._remove()
        self.held = False
        return freed

    def _remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


__all__ = ["Reserve"]
