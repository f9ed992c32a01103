"""Progress bars for long commands (the library reports progress through callbacks)."""

from __future__ import annotations

from collections.abc import Callable

from tqdm import tqdm


def bar(desc: str, unit: str = "it") -> tuple[Callable[..., None], Callable[[], None]]:
    """A ``progress(done, total, *detail)`` callback drawing a tqdm bar, and a function that closes it."""
    state: dict[str, tqdm] = {}

    def progress(done: int, total: int, *detail: object) -> None:
        if "bar" not in state:
            state["bar"] = tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True)
        b = state["bar"]
        b.total = total
        if detail:
            b.set_postfix_str(" ".join(map(str, detail)))
        b.update(done - b.n)

    def close() -> None:
        if "bar" in state:
            state["bar"].close()

    return progress, close
