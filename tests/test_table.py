"""The on-disk hash table behind the state index, and the lazy mapping over it."""

from __future__ import annotations

import marshal
import random

import pytest

from dagmake.state import Lazy
from dagmake.table import Table, build


def test_every_key_is_found_and_no_other() -> None:
    rng = random.Random(3)
    items = {f"k{rng.random()}".encode(): rng.randbytes(rng.randrange(0, 40)) for _ in range(3000)}
    items[b""] = b"empty key"
    t = Table(build(items.items()))
    assert t.count == len(items)
    for k, v in items.items():
        assert t.get(k) == v
    for n in range(2000):
        assert t.get(f"absent{n}".encode()) is None
    assert dict(t.items()) == items


def test_an_empty_table_and_garbage() -> None:
    t = Table(build([]))
    assert t.count == 0 and t.get(b"x") is None and list(t.items()) == []
    for garbage in (b"DMT2", b"DMT0" + bytes(40)):
        with pytest.raises(ValueError):
            Table(garbage)
    with pytest.raises(ValueError):
        Table(build([(b"a", b"b")])[:30])  # the slots run past the end


def test_lazy_behaves_as_a_dict_over_the_table() -> None:
    stored = {f"s{n}": (n, f"v{n}") for n in range(50)}
    table = Table(build((k.encode(), marshal.dumps(v)) for k, v in stored.items()))
    lazy: Lazy[tuple[int, str]] = Lazy(marshal.loads, table)
    model = dict(stored)
    rng = random.Random(7)
    for step in range(400):
        key = f"s{rng.randrange(70)}"
        op = rng.choice(["get", "set", "del", "in"])
        if op == "get":
            assert lazy.get(key) == model.get(key)
        elif op == "set":
            lazy[key] = model[key] = (step, "new")
        elif op == "del":
            if key in model:
                del lazy[key], model[key]
            else:
                with pytest.raises(KeyError):
                    del lazy[key]
        else:
            assert (key in lazy) == (key in model)
        assert len(lazy) == len(model)
    assert dict(lazy) == model
    twin = lazy.copy()
    twin["extra"] = (0, "x")
    assert "extra" not in lazy and len(twin) == len(model) + 1
    reloaded: Lazy[tuple[int, str]] = Lazy(marshal.loads, Table(lazy.table(lambda v: v)))
    assert dict(reloaded) == model
