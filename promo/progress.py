"""Progress on long commands (``promo simulate``, ``promo replay``): how far, how fast, how
long still, on the terminal; nothing at all when stderr is not one (a log file, CI, a pipe),
so that logs stay readable.

>>> import io
>>> with bar(total=3, unit="events", desc="replayed", file=io.StringIO()) as b:
...     b.disable  # not a terminal: off
True
"""

from __future__ import annotations

import sys
from typing import IO, Any

from tqdm import tqdm


def bar(*, total: float | None, unit: str, desc: str, file: IO[str] | None = None) -> tqdm[Any]:
    """A progress bar on ``file`` (stderr) if it is a terminal, else a silent one."""
    return tqdm(
        total=total,
        unit=unit,
        desc=desc,
        file=file if file is not None else sys.stderr,
        disable=None,  # tqdm's "off unless the file is a terminal"
        dynamic_ncols=True,
        leave=False,
    )
