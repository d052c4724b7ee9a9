"""Copies of one picture as one result: ranked results grouped by content hash.

Identical files (a copy in another folder, a symlink to a file outside the indexed roots, the same
download saved twice) are separate rows with the same content hash and the same vector, so they rank
side by side and fill a page with one picture. :func:`group_copies` folds them into :class:`Group` s,
each led by its best-ranked file; ``Engine.search_groups`` asks for as many raw results as it takes to
fill a page of groups (:func:`fetch_groups`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pixseek.errors import QueryError

from .cutoff import Cutoff
from .results import Result, Results

FIRST_K_PER_GROUP = 2  # raw results asked for per wanted group at first; doubled while too few groups


@dataclass(frozen=True)
class Group:
    """One picture: its best-ranked file and the other files with the same content (rank order)."""

    best: Result
    copies: tuple[Result, ...] = ()

    @property
    def ids(self) -> tuple[int, ...]:
        """Every file's id, the best first."""
        return (self.best.id, *(c.id for c in self.copies))

    @property
    def n_copies(self) -> int:
        """Files besides the best one."""
        return len(self.copies)

    def to_dict(self) -> dict:
        return {**self.best.to_dict(), "copies": [c.to_dict() for c in self.copies]}


@dataclass(frozen=True)
class GroupPage:
    """A page of the search page: its groups, whether more follow, and the relevance cut-off (None
    when none was asked for; ``cutoff.below`` counts the pictures under it once the page reached it)."""

    groups: list[Group]
    more: bool
    cutoff: Cutoff | None = None


def group_copies(results: Sequence[Result]) -> list[Group]:
    """Ranked results -> groups of identical files, in the order of each group's best (first) result.

    Files group by content hash; an empty hash (unknown) never groups."""
    members: dict[str | int, list[Result]] = {}
    for r in results:
        members.setdefault(r.hash or r.id, []).append(r)
    return [Group(rs[0], tuple(rs[1:])) for rs in members.values()]


def fetch_groups(search: Callable[[int], list[Result]], n_groups: int, total: int) -> tuple[list[Group], bool]:
    """The first ``n_groups`` groups of what ``search(k)`` ranks (its ``k`` best results), and whether
    more exist. ``k`` starts at ``FIRST_K_PER_GROUP`` × (n_groups + 1) and doubles until one group
    more than wanted turns up or the search runs dry (fewer than ``k`` results, or ``k`` reached
    ``total``, the most there can be), so many copies of a few pictures never leave a page short.

    Copies share their picture's vector, hence its score, so every copy of a returned group ranks
    above the extra group's best and is among the results (ties aside; an ANN index may miss some).
    """
    if n_groups < 1:
        raise QueryError("the number of groups must be at least 1")
    k = FIRST_K_PER_GROUP * (n_groups + 1)
    while True:
        results = search(k)
        groups = group_copies(results)
        if len(groups) > n_groups or len(results) < k or k >= total:
            return groups[:n_groups], len(groups) > n_groups
        k *= 2


def fetch_page(search: Callable[[int], Results], n_groups: int, total: int, cut: Cutoff | None) -> GroupPage:
    """:func:`fetch_groups` with the cut-off ``cut`` that ``search`` applies, as the last search counted it."""
    last: list[Results] = []

    def run(k: int) -> list[Result]:
        last[:] = [search(k)]
        return last[0]

    groups, more = fetch_groups(run, n_groups, total)
    return GroupPage(groups, more, last[0].cutoff if last else cut)
