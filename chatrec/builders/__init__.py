"""Reproducible builders for the data files shipped in ``data/``."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


class SourceError(Exception):
    """A builder's input is missing or malformed; the message names the file (and line)."""


@contextmanager
def atomic_output(out: Path) -> Iterator[IO[bytes]]:
    """A binary file that appears at ``out`` only when complete: written beside it, synced, renamed over it
    (readers never see half a file; a failure leaves the old file in place)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as raw:
            yield raw
            raw.flush()
            os.fsync(raw.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
