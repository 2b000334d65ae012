"""Resident memory of a process holding a million users' states, as a worker holds them.

A synthetic fill: a worker's table lives in Faust's memory store, a dict of bytes keys to
bytes values (``faust.stores.memory.Store.data``), so this process builds such a dict with
``--users`` keys of 16 bytes and values of random bytes whose sizes are drawn from the
sizes measured on a real worker's changelog (read as a JSON list from stdin). It prints its
RSS before and after as JSON. The rest of a worker (Faust, models, buffers) is not in it: the
pipeline's ``worker_rss_mb`` shows that part.

``python -m benchmarks.memory --users 1000000 < sizes.json``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from chaos.harness import REPO_ROOT, process_rss_mb

METHOD = (
    "synthetic fill, not a worker: a separate Python process builds a dict of {users} "
    "16-byte keys -> random bytes values (the layout of Faust's memory store, "
    "faust.stores.memory.Store.data), value sizes drawn with replacement from the sizes "
    "measured on the one-worker run's changelog; RSS from /proc before and after the fill"
)


def fill(users: int, sizes: Sequence[int], seed: int) -> dict[bytes, bytes]:
    """``users`` states of sizes drawn from ``sizes``.

    >>> store = fill(3, [10, 20], seed=1)
    >>> sorted(store)[0], sorted(len(v) for v in store.values()) in ([10, 10, 20], [10, 20, 20])
    (b'u000000000000000', True)
    """
    rng = random.Random(seed)
    return {
        b"u%015d" % i: rng.randbytes(size) for i, size in enumerate(rng.choices(sizes, k=users))
    }


def measure(users: int, sizes: Sequence[int], seed: int) -> dict[str, Any]:
    """Run the fill in its own process; its figures as JSON."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", "--users", str(users), "--seed", str(seed)],
        input=json.dumps(list(sizes)).encode(),
        capture_output=True,
        cwd=REPO_ROOT,
        timeout=600,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"memory fill failed: {done.stderr.decode(errors='replace')[-2000:]}")
    figures = json.loads(done.stdout)
    net = figures["rss_mb"] - figures["rss_mb_empty"]
    return {
        "method": METHOD.format(users=f"{users:,}"),
        "synthetic": True,
        **figures,
        "bytes_per_user": round(net * 2**20 / users, 1),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory", description=__doc__)
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    sizes = json.load(sys.stdin)
    empty = process_rss_mb(os.getpid())
    store = fill(args.users, sizes, args.seed)
    print(
        json.dumps(
            {
                "users": len(store),
                "value_mean_bytes": round(sum(map(len, store.values())) / len(store), 1),
                "rss_mb_empty": round(empty, 1),
                "rss_mb": round(process_rss_mb(os.getpid()), 1),
            }
        )
    )


if __name__ == "__main__":
    main()
