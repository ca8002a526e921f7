"""Reading a file someone sent: a regular file of bounded size only, so a FIFO cannot hang the reader and
``/dev/zero`` or a huge file cannot exhaust its memory."""

from __future__ import annotations

import os
import stat
from pathlib import Path


class RefusedFile(OSError):
    """A path that is not a regular file, or one larger than the reader allows."""


def read_bounded(path: str | Path, max_bytes: int) -> bytes:
    """The bytes of the regular file at ``path``; ``RefusedFile`` for anything else or over ``max_bytes``.

    The file is opened non-blocking, so a FIFO with no writer is refused at once instead of waiting.
    """
    with open(path, "rb", opener=lambda name, flags: os.open(name, flags | getattr(os, "O_NONBLOCK", 0))) as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise RefusedFile("not a regular file")
        if info.st_size > max_bytes:
            raise RefusedFile(f"{info.st_size} bytes, larger than the limit of {max_bytes}")
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise RefusedFile(f"larger than the limit of {max_bytes} bytes")
    return data
