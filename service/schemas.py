"""The service's JSON: a search request, a result, an answer and an error (pydantic models; they are the
OpenAPI schemas ``/docs`` shows). A request becomes a :class:`~pixseek.service.backend.Ask` here, with
its filter built and checked by :class:`~pixseek.store.filters.Filter`, the CLI's filter, so a bad
value gets the CLI's one-line message."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import ErrorDetails

from pixseek.errors import QueryError
from pixseek.search import Filter, Result
from pixseek.store.filters import MAX_SIDE, parse_date

from .backend import Ask, Upload

MAX_ID = 2**63 - 1  # SQLite's largest integer
MAX_K = 100_000  # as `pixseek search -k`
MAX_OFFSET = 100_000


def _listed(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


Strings = Annotated[list[str], BeforeValidator(_listed)]  # a list, or one string for a list of one
STRING_FIELDS = ("text", "not", "types")


class SearchIn(BaseModel):
    """A query: texts, negatives, an indexed image and uploaded pictures, combined into one vector as
    `pixseek search` combines them; filters narrow the candidates before ranking."""

    model_config = ConfigDict(extra="forbid")

    text: Strings = Field(
        default_factory=list,
        description='Texts (or one text), each with an optional weight suffix: "at night::0.3".',
        examples=["a dog on a beach", ["a red car::0.7", "at night::0.3"]],
    )
    negatives: Strings = Field(
        default_factory=list,
        alias="not",
        description='Texts to push results away from ("blurry", "text::0.5"), as `--not`.',
    )
    similar: int | None = Field(
        default=None, ge=0, le=MAX_ID, description="An indexed image id whose vector joins the query."
    )
    image_weights: list[float] = Field(
        default_factory=list,
        description="Weights of the uploaded pictures (multipart `image` parts), in order; 1 when not given.",
    )
    mode: str = Field(
        default="hybrid",
        description="hybrid (meaning and words fused), semantic (meaning) or keyword (file names, folders, ...).",
        json_schema_extra={"enum": ["hybrid", "semantic", "keyword"]},
    )
    k: int = Field(default=20, ge=1, le=MAX_K, description="Results per page.")
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET, description="Results to skip (paging).")
    min_score: float | None = Field(default=None, description="Drop results below this cosine score.")
    folder: str | None = Field(
        default=None, description="Only images in this absolute folder (or URL prefix, s3://bucket/photos) or below it."
    )
    types: Strings = Field(default_factory=list, description="File types: JPEG, png, jpg, heic, ...")
    since: str | None = Field(default=None, description="YYYY-MM-DD: dated on or after (EXIF, else file time).")
    until: str | None = Field(default=None, description="YYYY-MM-DD: dated on or before.")
    min_side: int = Field(default=0, ge=0, le=MAX_SIDE, description="Shorter side of at least this many pixels.")

    def to_ask(self, uploads: Sequence[tuple[bytes, str]] = ()) -> Ask:
        """The query for the backend; ``uploads``: (bytes, file name) of the multipart pictures."""
        if len(self.image_weights) > len(uploads):
            raise QueryError(
                f"image_weights has {len(self.image_weights)} weight(s) for {len(uploads)} uploaded picture(s)"
            )
        weights = list(self.image_weights) + [1.0] * (len(uploads) - len(self.image_weights))
        return Ask(
            texts=tuple(self.text),
            negatives=tuple(self.negatives),
            uploads=tuple(Upload(data, name, w) for (data, name), w in zip(uploads, weights)),
            similar=self.similar,
            mode=self.mode,
            k=self.k,
            offset=self.offset,
            min_score=self.min_score,
            filter=make_filter(self.folder, tuple(self.types), self.since, self.until, self.min_side),
        )


def make_filter(
    folder: str | None, types: tuple[str, ...], since: str | None, until: str | None, min_side: int
) -> Filter:
    """The CLI's filter from the service's fields (raises QueryError with the CLI's messages)."""
    return Filter(
        folder=folder or None,
        formats=types,
        date_from=parse_date(since),
        date_to=parse_date(until),
        min_side=min_side,
    ).validate()


class ResultOut(BaseModel):
    rank: int
    id: int
    path: str
    score: float = Field(description="Cosine similarity (bm25 in keyword mode).")
    label: str | None = Field(description="strong, good or weak on this index's calibrated scale.")
    width: int | None
    height: int | None
    format: str | None
    size: int
    mtime: float
    taken_at: float | None
    hash: str
    root: str
    why: list[str] = Field(description='What it matched on: "image meaning", "file name", "folder", ...')
    thumb: str = Field(description="Its thumbnail (WebP): /thumbs/{id}")
    image: str = Field(description="The picture: /images/{id}")

    @classmethod
    def of(cls, r: Result, label: str | None) -> ResultOut:
        d = r.to_dict()
        return cls(**d, label=label, thumb=f"/thumbs/{r.id}", image=f"/images/{r.id}")


class SearchOut(BaseModel):
    results: list[ResultOut]
    next_offset: int | None = Field(description="The offset of the next page, or null when none follows.")
    took_ms: float


class ErrorOut(BaseModel):
    error: str = Field(description="One line, the same as the command line's `Error: ...`.")
    hint: str | None = Field(default=None, description="What to do about it, when there is something.")


def one_line(errors: list[ErrorDetails]) -> str:
    """A pydantic validation failure as one line: the first problem, named by its field."""
    e = errors[0]
    where = ".".join(str(p) for p in e["loc"] if p not in ("body", "query", "path"))
    if e["type"] == "extra_forbidden":
        return f"unknown field {where!r}"
    if e["type"] == "list_type" and where in STRING_FIELDS:
        return f"invalid {where}: give a string or a list of strings"
    msg = e["msg"][:1].lower() + e["msg"][1:]
    return f"invalid {where}: {msg}" if where else msg
