"""A name → object registry in the spirit of timm's model registry: one decorator, one lookup."""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from corrbench.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects. `get` fails with the valid names and the closest match."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T) -> T:
        if name in self._items:
            raise ValueError(f"{self.kind} '{name}' is registered twice")
        self._items[name] = obj
        return obj

    def decorator(self, name: str) -> Callable[[T], T]:
        """`@REGISTRY.decorator('name')` registers the decorated object under `name`."""
        def wrap(obj: T) -> T:
            return self.register(name, obj)
        return wrap

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self._items) from None

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def items(self):
        return self._items.items()

    def __len__(self) -> int:
        return len(self._items)
