"""Hypothesis strategies for event envelopes, shared by the archive's property tests: any
Unicode in the strings, any moment the canonical timestamp can write, every kind of actor."""

from __future__ import annotations

from datetime import datetime

from hypothesis import strategies as st

from ledger.envelope import ACTOR_KINDS, Actor

MOMENTS = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999_999)
)


def texts(*, max_size: int | None = None, without: str = "") -> st.SearchStrategy[str]:
    """Non-empty strings of any Unicode but lone surrogates (and ``without``)."""
    characters = st.characters(blacklist_categories=("Cs",), blacklist_characters=without)
    return st.text(characters, min_size=1, max_size=max_size)


def actors(text: st.SearchStrategy[str]) -> st.SearchStrategy[Actor]:
    return st.builds(
        Actor,
        kind=st.sampled_from(ACTOR_KINDS),
        id=text,
        model=st.none() | text,
        version=st.none() | text,
    )


def canonical_moment(moment: datetime) -> str:
    """``moment`` (naive, UTC) as the ledger writes a timestamp: four-digit year, microseconds."""
    return f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S.%f}Z"
