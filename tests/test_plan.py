"""decide() with dicts where the real code passes the filesystem: one row per reason."""

from __future__ import annotations

import pytest

from dagmake.fingerprint import Components
from dagmake.model import ReasonKind
from dagmake.plan import Action, Facts, decide, key_of
from dagmake.state import StepRecord

BASE = Facts(
    command="cc -c a.c",
    cwd="",
    env=(("CFLAGS", "k1"),),
    inputs=(("a.c", "d1"), ("a.h", "d2")),
    deps=(("gen", "g1"),),
    outputs_now={"a.o": "o1"},
    declares_inputs=True,
)


def record_of(facts: Facts) -> StepRecord:
    comps = Components(
        facts.command,
        facts.cwd,
        facts.env,
        facts.inputs,
        tuple((d, g) for d, g in facts.deps if g is not None),
    )
    return StepRecord("cc", comps.fingerprint(), comps, (("a.o", "o1"),))


def never_cached(fp: str) -> str | None:
    return None


class Contents:
    """`plan.KeyContent` from dicts: SHA-256 hexes by path and by dependency."""

    def __init__(self, files: dict[str, str], produced: dict[str, str]) -> None:
        self.files, self.handed_on = files, produced

    def file(self, path: str) -> str | None:
        return self.files.get(path)

    def produced(self, step_id: str) -> str | None:
        return self.handed_on.get(step_id)


SHAS = Contents({"a.c": "s1", "a.h": "s2"}, {"gen": "p1"})


def test_the_action_key_is_made_of_the_sha256_digests_not_the_xxh3_ones() -> None:
    key = key_of(BASE, SHAS)
    assert key is not None and key == key_of(BASE, Contents(dict(SHAS.files), {"gen": "p1"}))
    # the same xxh3 digests (colliding contents), other SHA-256 ones: another key
    assert key_of(BASE, Contents({"a.c": "s1", "a.h": "other"}, {"gen": "p1"})) != key
    assert key_of(BASE, Contents(dict(SHAS.files), {"gen": "other"})) != key
    # other xxh3 digests (the same contents as far as the key knows): the same key
    assert key_of(BASE._replace(inputs=(("a.c", "x"), ("a.h", "y"))), SHAS) == key
    # a dependency whose output's SHA-256 is not known: no key (nothing is looked up)
    assert key_of(BASE, Contents(dict(SHAS.files), {})) is None


def kinds(d) -> list[tuple[str, str | None]]:
    return [(r.kind.value, r.path or r.step or r.name) for r in d.reasons]


def test_unchanged_step_is_up_to_date_with_no_reasons() -> None:
    d = decide("cc", BASE, record_of(BASE), force=False, cached=never_cached, content=SHAS)
    assert d.action is Action.UP_TO_DATE and d.reasons == ()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"command": "cc -O2 -c a.c"}, [("command_changed", None)]),
        ({"cwd": "sub"}, [("cwd_changed", None)]),
        ({"env": (("CFLAGS", "k2"),)}, [("env_changed", "CFLAGS")]),
        ({"env": ()}, [("env_changed", "CFLAGS")]),
        ({"inputs": (("a.c", "dX"), ("a.h", "d2"))}, [("input_changed", "a.c")]),
        ({"inputs": (("a.c", "d1"),)}, [("input_removed", "a.h")]),
        ({"inputs": (("a.c", "d1"), ("a.h", "d2"), ("b.h", "d3"))}, [("input_added", "b.h")]),
        ({"deps": (("gen", "g2"),)}, [("dependency_changed", "gen")]),
        ({"outputs_now": {"a.o": None}}, [("output_missing", "a.o")]),
        ({"outputs_now": {"a.o": "oX"}}, [("output_modified", "a.o")]),
    ],
)
def test_each_change_is_named(
    change: dict[str, object], expected: list[tuple[str, str | None]]
) -> None:
    d = decide(
        "cc",
        BASE._replace(**change),
        record_of(BASE),
        force=False,
        cached=never_cached,
        content=SHAS,
    )  # type: ignore[arg-type]
    assert d.action is Action.RUN
    assert kinds(d) == expected


def test_several_changes_are_all_listed_in_reading_order() -> None:
    now = BASE._replace(command="cc -O2 -c a.c", inputs=(("a.c", "dX"), ("a.h", "d2")))
    d = decide("cc", now, record_of(BASE), force=False, cached=never_cached, content=SHAS)
    assert [r.message for r in d.reasons] == ["command changed", "input a.c changed"]


def test_never_run_forced_and_no_inputs() -> None:
    assert kinds(decide("cc", BASE, None, force=False, cached=never_cached, content=SHAS)) == [
        ("never_run", None)
    ]
    assert kinds(
        decide("cc", BASE, record_of(BASE), force=True, cached=never_cached, content=SHAS)
    ) == [("forced", None)]
    bare = BASE._replace(declares_inputs=False)
    assert kinds(
        decide("cc", bare, record_of(bare), force=False, cached=never_cached, content=SHAS)
    ) == [("no_inputs", None)]


def test_cached_result_is_restored_instead_of_run() -> None:
    now = BASE._replace(inputs=(("a.c", "dX"), ("a.h", "d2")))
    d = decide("cc", now, record_of(BASE), force=False, cached=lambda fp: "local", content=SHAS)
    assert d.action is Action.RESTORE
    assert [r.kind for r in d.reasons] == [ReasonKind.INPUT_CHANGED, ReasonKind.CACHE_HIT]


def test_dependency_that_will_run_makes_a_conditional_run() -> None:
    now = BASE._replace(deps=(("gen", None),))
    d = decide("cc", now, record_of(BASE), force=False, cached=never_cached, content=SHAS)
    assert d.action is Action.RUN and d.conditional and d.fingerprint is None
    assert kinds(d) == [("dependency_will_run", "gen")]


def test_own_reasons_with_a_pending_dependency_are_not_conditional() -> None:
    now = BASE._replace(deps=(("gen", None),), command="cc -g -c a.c")
    d = decide("cc", now, record_of(BASE), force=False, cached=never_cached, content=SHAS)
    assert not d.conditional
    assert kinds(d) == [("command_changed", None), ("dependency_will_run", "gen")]


def test_identical_dependency_outputs_leave_the_step_up_to_date() -> None:
    # Early cutoff: 'gen' re-ran, but handed over the same digest.
    d = decide(
        "cc",
        BASE._replace(deps=(("gen", "g1"),)),
        record_of(BASE),
        force=False,
        cached=never_cached,
        content=SHAS,
    )
    assert d.action is Action.UP_TO_DATE
