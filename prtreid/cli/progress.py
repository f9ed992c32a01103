"""Progress bars for long commands (the library reports progress through callbacks)."""

from __future__ import annotations

from collections.abc import Callable

from tqdm import tqdm


def bar(desc: str, unit: str = "it") -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A ``progress(done, total)`` callback drawing a tqdm bar, and a function that closes it."""
    state: dict[str, tqdm] = {}

    def progress(done: int, total: int) -> None:
        if "bar" not in state:
            state["bar"] = tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True)
        b = state["bar"]
        b.total = total
        b.update(done - b.n)

    def close() -> None:
        if "bar" in state:
            state["bar"].close()

    return progress, close
