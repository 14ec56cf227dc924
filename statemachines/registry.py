"""Named callables and models for definitions loaded from YAML/JSON: text is looked up, never run."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class Registry(Mapping[str, Any]):
    """Guards, actions, effect functions and pydantic models, each under a name.

    ```python
    reg = Registry()

    @reg.register
    def paid_enough(ctx, event): ...

    reg.add(Order)            # models register under their class name
    ```
    """

    def __init__(self, items: Mapping[str, Any] | None = None) -> None:
        self._items: dict[str, Any] = {}
        for name, value in (items or {}).items():
            self.add(value, name=name)

    def register(self, fn: F | None = None, *, name: str | None = None) -> Any:
        """Decorator (with or without a name) that adds a callable."""
        if fn is None:
            return lambda f: self.add(f, name=name)
        return self.add(fn, name=name)

    def add(self, value: Any, *, name: str | None = None) -> Any:
        key = name or getattr(value, "__name__", None)
        if not key or not isinstance(key, str):
            raise ValueError(f"cannot register {value!r} without a name")
        if not callable(value):
            raise TypeError(f"registry entry {key!r} must be callable or a model class")
        existing = self._items.get(key)
        if existing is not None and existing is not value:
            raise ValueError(f"registry already has a different entry named {key!r}")
        self._items[key] = value
        return value

    def __getitem__(self, name: str) -> Any:
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)
