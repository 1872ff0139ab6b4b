"""Writes to a SQLiteStore forever and reports each acknowledged write on stdout, one line each:
`<revision> <create_revision> <key> <value>`. test_sqlite_durability kills it with SIGKILL.

Usage: python writer_process.py DB_PATH [TASKS]
"""

from __future__ import annotations

import asyncio
import itertools
import sys

from pyk8s.store.sqlite import SQLiteStore


async def main(path: str, tasks: int) -> None:
    store = SQLiteStore(path)
    await store.start()

    def report(revision: int, create_revision: int, key: str, value: bytes) -> None:
        # One write() per line (< PIPE_BUF), so a kill never leaves half a line behind.
        sys.stdout.write(f"{revision} {create_revision} {key} {value.decode()}\n")
        sys.stdout.flush()

    async def writer(task: int) -> None:
        for n in itertools.count():
            key = f"/kill/{task}/{n}"
            created = await store.create(key, f"{key}:created".encode())
            report(created.mod_revision, created.create_revision, key, created.value)
            updated = await store.update(key, f"{key}:updated".encode(), created.mod_revision)
            report(updated.mod_revision, updated.create_revision, key, updated.value)

    await asyncio.gather(*(writer(task) for task in range(tasks)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 8))
