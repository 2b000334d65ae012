"""Progress on long commands (``promo simulate``, ``replay``, ``evaluate``, ``bench``): how
far, how fast, how long still, on the terminal; nothing at all when stderr is not one (a log
file, CI, a pipe), so that logs stay readable.

>>> import io
>>> with bar(total=3, unit="events", desc="replayed", file=io.StringIO()) as b:
...     b.disable  # not a terminal: off
True
>>> log = io.StringIO()
>>> with stages(total=2, desc="bench", file=log) as start:
...     start("bench: transport")
...     start("bench: framework")
>>> log.getvalue()  # the stages' lines stay, bar or no bar
'bench: transport\\nbench: framework\\n'
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


@contextmanager
def stages(
    *, total: int, desc: str, file: IO[str] | None = None
) -> Iterator[Callable[[str], None]]:
    """A bar over ``total`` stages of unequal length (its time left is a rough guide):
    ``start(line)`` completes the stage before, and writes ``line`` above the bar, on the
    terminal or not (the log of what ran)."""
    out = file if file is not None else sys.stderr
    with bar(total=total, unit="stage", desc=desc, file=out) as progress:
        started = False

        def start(line: str) -> None:
            nonlocal started
            if started:
                progress.update()
            started = True
            progress.write(line, file=out)

        yield start
        if started:
            progress.update()
