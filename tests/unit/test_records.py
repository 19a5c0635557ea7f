"""`record`: a frozen, slotted dataclass whose constructor is our own; it must
accept, refuse and produce exactly what `@dataclass(frozen=True, slots=True)` does."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.records import Body, Message, record
from tests.support.records import message


@record
class Sample:
    a: int
    b: str = "b"
    c: list[int] = field(default_factory=list)
    d: int = field(default=7, init=False)
    e: Mapping[str, int] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        if self.a < 0:
            raise ValueError("a is negative")


@dataclass(frozen=True, slots=True)
class Reference:
    a: int
    b: str = "b"
    c: list[int] = field(default_factory=list)
    d: int = field(default=7, init=False)
    e: Mapping[str, int] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        if self.a < 0:
            raise ValueError("a is negative")


def _outcome(cls: type[Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    try:
        made = cls(*args, **kwargs)
    except (TypeError, ValueError) as exc:
        return type(exc)
    return dataclasses.astuple(made)


calls = st.tuples(
    st.lists(st.one_of(st.integers(-2, 5), st.text(max_size=2)), max_size=4).map(tuple),
    st.dictionaries(st.sampled_from(["a", "b", "c", "d", "x"]), st.integers(-2, 5), max_size=3),
)


@given(calls)
def test_accepts_and_refuses_what_the_dataclass_does(
    call: tuple[tuple[Any, ...], dict[str, Any]],
) -> None:
    args, kwargs = call
    assert _outcome(Sample, args, kwargs) == _outcome(Reference, args, kwargs)


def test_defaults_factories_and_init_false_fields() -> None:
    one, two = Sample(1), Sample(1)
    assert (one.b, one.c, one.d, one.e) == ("b", [], 7, {})
    # Each instance gets its own list from the factory, as with dataclass.
    assert one.c is not two.c
    assert Sample(2, "x", [3]) == Sample(a=2, b="x", c=[3])


def test_frozen_slotted_hashable_and_replaceable() -> None:
    sample = Sample(1, "x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        sample.a = 2  # type: ignore[misc]
    assert not hasattr(sample, "__dict__")
    assert hash(Body(text="hi")) == hash(Body(text="hi"))
    assert dataclasses.replace(sample, b="y") == Sample(1, "y")
    with pytest.raises(ValueError):
        dataclasses.replace(sample, a=-1)


def test_post_init_still_guards_the_records() -> None:
    with pytest.raises(ValueError):
        Body()
    with pytest.raises(ValueError):
        Body(text="a", data=b"a")


def test_a_message_round_trips_through_replace() -> None:
    original = message("m1", registered_delivery=0)
    assert isinstance(original, Message)
    assert dataclasses.replace(original) == original
    assert repr(original).startswith("Message(id='m1'")
