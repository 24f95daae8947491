"""LangChain ``Embeddings`` reported as embedding calls of the current run.

LangChain (langchain-core 1.8) has no embedding callback: a vector store or
retriever calls ``embed_query`` / ``embed_documents`` on its embeddings
object directly, and only the retrieval around it is seen. So the
embeddings object is wrapped where the user builds the store::

    embeddings = report_embeddings(OpenAIEmbeddings(model="text-embedding-3-small"))
    store = InMemoryVectorStore(embeddings)

Each call made while a run is current (inside an invoke the handler
reports, or a ``dt.run``) is sent with ``Run.embedding(model, input_count,
latency_ms, source="langchain")``: an ``external.signal`` named
``EMBEDDING``; the texts are neither sent nor hashed. Calls outside a run
are passed through unreported.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from langchain_core.embeddings import Embeddings

from dunetrace.run import Run, get_current_run

__all__ = ["ReportedEmbeddings", "report_embeddings"]

_T = TypeVar("_T")
_MODEL_ATTRIBUTES = ("model", "model_name", "model_id", "deployment")


def _model_of(embeddings: Embeddings) -> str:
    for attribute in _MODEL_ATTRIBUTES:
        value = getattr(embeddings, attribute, None)
        if isinstance(value, str) and value:
            return value
    return type(embeddings).__name__


def _current() -> Run | None:
    run = get_current_run()
    return run if run is not None and run.started and not run.finished else None


class ReportedEmbeddings(Embeddings):
    """Wraps an ``Embeddings`` object: the same vectors, each call reported
    to the current run. Every other attribute is the wrapped object's."""

    def __init__(self, embeddings: Embeddings, *, model: str | None = None) -> None:
        if not isinstance(embeddings, Embeddings):
            raise TypeError(
                f"report_embeddings() takes a langchain_core Embeddings object; got {type(embeddings).__name__}"
            )
        if model is not None and (not isinstance(model, str) or not model):
            raise ValueError(f"report_embeddings(model=...) must be a non-empty string or None; got {model!r}")
        self.embeddings = embeddings
        self.model = model or _model_of(embeddings)

    def __getattr__(self, name: str) -> Any:
        # Only called for what this class lacks: the wrapped object's own
        # settings (dimensions, client...) stay readable.
        if name == "embeddings":
            raise AttributeError(name)
        return getattr(self.embeddings, name)

    def __repr__(self) -> str:
        return f"<ReportedEmbeddings {self.embeddings!r}>"

    def _measured(self, count: int, call: Callable[[], _T]) -> _T:
        run = _current()
        if run is None:
            return call()
        started = time.perf_counter()
        try:
            result = call()
        except BaseException:
            run.embedding(self.model, count, _ms(started), source="langchain", success=False)
            raise
        run.embedding(self.model, count, _ms(started), source="langchain")
        return result

    async def _ameasured(self, count: int, call: Callable[[], Awaitable[_T]]) -> _T:
        run = _current()
        if run is None:
            return await call()
        started = time.perf_counter()
        try:
            result = await call()
        except BaseException:
            run.embedding(self.model, count, _ms(started), source="langchain", success=False)
            raise
        run.embedding(self.model, count, _ms(started), source="langchain")
        return result

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._measured(_count(texts), lambda: self.embeddings.embed_documents(texts))

    def embed_query(self, text: str) -> list[float]:
        return self._measured(1, lambda: self.embeddings.embed_query(text))

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return await self._ameasured(_count(texts), lambda: self.embeddings.aembed_documents(texts))

    async def aembed_query(self, text: str) -> list[float]:
        return await self._ameasured(1, lambda: self.embeddings.aembed_query(text))


def _count(texts: Any) -> int:
    try:
        return len(texts)
    except TypeError:  # an iterable without a length: the count is unknown
        return 0


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def report_embeddings(embeddings: Embeddings, *, model: str | None = None) -> ReportedEmbeddings:
    """``embeddings`` wrapped so that each embedding call made inside a run
    is reported (see the module docstring). ``model`` names the model when
    the object does not say (its ``model`` / ``model_name`` attribute, else
    its class name)."""
    if isinstance(embeddings, ReportedEmbeddings):
        return embeddings
    return ReportedEmbeddings(embeddings, model=model)
