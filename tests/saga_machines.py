"""Sagas the compensation tests share (tests/test_compensation*.py): a ledger of calls and two
small machines whose effects can be made to fail on demand."""

from __future__ import annotations

from typing import Any

from statemachines import Effect, Retry, machine, state

NO_RETRY = Retry(max_attempts=1)
END = state(final=True)


class Ledger:
    """Records every call (name, key, attempt); `fail` names calls that raise, `fail_times` how
    many of their attempts do (None: every one)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int]] = []
        self.fail: dict[str, int | None] = {}

    def fn(self, name: str) -> Any:
        def call(ctx: Any, c: Any) -> Any:
            self.calls.append((name, c.key, c.attempt))
            limit = self.fail.get(name, 0)
            if limit is None or c.attempt <= limit:
                raise RuntimeError(f"{name} is down")
            return {"ref": f"{name}-{c.attempt}"}

        call.__name__ = name
        return call

    def names(self) -> list[str]:
        return [n for n, _k, _a in self.calls]


def saga(ledger: Ledger, *, undo_retry: Retry = NO_RETRY) -> Any:
    """a books A, b books B, c books C (no undo); c's failure goes to `undoing`."""
    f = ledger.fn
    return machine(
        "saga",
        initial="a",
        states={
            "a": state(effect=Effect(f("book_a"), compensate=f("undo_a"), retry=undo_retry),
                       on={"done.book_a": "b"}),
            "b": state(effect=Effect(f("book_b"), compensate=f("undo_b"), retry=undo_retry),
                       on={"done.book_b": "c"}),
            "c": state(effect=Effect(f("book_c"), retry=NO_RETRY),
                       on={"done.book_c": "ok", "error.book_c": "undoing"}),
            "undoing": state(compensate=True, on={"done.compensation": "undone"}),
            "ok": state(final=True),
            "undone": state(final=True),
        },
    )  # fmt: skip


def two_bookings(ledger: Ledger) -> Any:
    f = ledger.fn
    return machine(
        "two",
        initial="a",
        states={
            "a": state(effect=Effect(f("book_a"), compensate=f("undo_a")), on={"done.book_a": "b"}),
            "b": state(effect=Effect(f("book_b"), compensate=f("undo_b")), on={"done.book_b": "held"}),
            "held": state(on={"UNDO": "undoing"}),
            "undoing": state(compensate=True, on={"done.compensation": "undone"}),
            "undone": state(final=True),
        },
    )
