"""Progress bars for long commands (the library reports progress through callbacks)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm


def bar(desc: str, unit: str = "it") -> tuple[Callable[..., None], Callable[[], None]]:
    """A ``progress(done, total, *detail)`` callback drawing a tqdm bar, and a function that closes it.

    While the bar is open, log records go through ``tqdm.write``: each on its own line above the bar,
    never appended to the bar's line.
    """
    state: dict[str, tqdm] = {}
    redirect = contextlib.ExitStack()

    def progress(done: int, total: int, *detail: object) -> None:
        if "bar" not in state:
            redirect.enter_context(logging_redirect_tqdm())
            state["bar"] = tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True)
        b = state["bar"]
        b.total = total
        if detail:
            b.set_postfix_str(" ".join(map(str, detail)))
        b.update(done - b.n)

    def close() -> None:
        if "bar" in state:
            state["bar"].close()
        redirect.close()

    return progress, close
