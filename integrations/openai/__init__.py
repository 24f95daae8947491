"""Report the LLM calls an OpenAI client makes inside a Dunetrace run.

.. code-block:: python

    client = dt.wrap_openai(OpenAI())          # or AsyncOpenAI(), AzureOpenAI()
    with dt.run("support-agent", user_input=question):
        client.chat.completions.create(model="gpt-4o-mini", messages=[...])

``chat.completions.create`` / ``.parse`` and ``responses.create`` / ``.parse``
(and the helpers built on them: ``chat.completions.stream``,
``beta.chat.completions.stream``, ``responses.stream``, ``with_raw_response``,
``with_streaming_response``)
emit ``llm.called`` / ``llm.responded`` with the model, token counts, latency,
finish reason, output length and output hash. Streams are reported when they
end, are closed, or fail; ask for usage with
``stream_options={"include_usage": True}``. Outside a run the client behaves
exactly as before. API errors become ``finish_reason="error"`` (with the
exception's class as ``error_type``) plus an ``external.signal``
(``rate_limit``, ``timeout``, ``api_error``, with ``http_status``) and are
raised to the caller unchanged. ``embeddings.create`` is reported as an
``EMBEDDING`` external.signal (model, input count, latency, tokens).

The client returned is the same object, still an ``OpenAI``; wrapping twice
is a no-op and :func:`unwrap_openai` restores it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar, cast

from .._client_wrapping import is_wrapped, reporting_method, retry_method, unwrap_client, wrap_client
from .._llm_calls import Endpoint, http_errors
from .embeddings import embedding_method
from .readers import (
    ChatStreamReader,
    ResponsesStreamReader,
    chat_prompt,
    model_of,
    read_chat_completion,
    read_response,
    responses_prompt,
)

if TYPE_CHECKING:
    from dunetrace import Dunetrace

__all__ = ["is_wrapped", "unwrap_openai", "wrap_openai"]

C = TypeVar("C")

SOURCE = "openai"


def _import_openai() -> Any:
    try:
        import openai
    except ImportError as exc:
        raise ImportError(
            "dunetrace.integrations.openai needs the openai package: pip install 'dunetrace[openai]'"
        ) from exc
    return openai


def _endpoints(openai: Any) -> tuple[Endpoint, Endpoint]:
    timeouts, transport = http_errors(openai)
    errors = ((openai.APITimeoutError, *timeouts), (openai.RateLimitError,), (openai.APIError, *transport))
    chat = Endpoint(
        "openai.chat.completions", SOURCE, model_of, chat_prompt, read_chat_completion, ChatStreamReader, errors
    )
    responses = Endpoint(
        "openai.responses", SOURCE, model_of, responses_prompt, read_response, ResponsesStreamReader, errors
    )
    return chat, responses


_BETA_CHAT = ("beta", "chat", "completions")


def _has(client: Any, path: tuple[str, ...]) -> bool:
    owner = client
    try:
        for name in path:
            owner = getattr(owner, name)
    except AttributeError:
        return False
    return True


def wrap_openai(client: C, dunetrace: Dunetrace | None = None) -> C:
    """Make ``client`` (``OpenAI`` or ``AsyncOpenAI``) report its LLM calls
    into the current run, and return it. ``dunetrace``, when given, unwraps
    it at its shutdown. Prefer ``dt.wrap_openai(client)``."""
    openai = _import_openai()
    if not isinstance(client, (openai.OpenAI, openai.AsyncOpenAI)):
        raise TypeError(f"wrap_openai() takes an openai.OpenAI or openai.AsyncOpenAI client; got {client!r}")
    chat, responses = _endpoints(openai)
    methods = [
        (("chat", "completions"), "create", reporting_method(chat)),
        # Structured outputs: parse() posts by itself, not through create().
        (("chat", "completions"), "parse", reporting_method(chat)),
        (("responses",), "create", reporting_method(responses)),
        (("responses",), "parse", reporting_method(responses)),
        # Not an LLM call: an EMBEDDING external.signal, never the texts.
        (("embeddings",), "create", embedding_method(chat)),
        ((), "_sleep_for_retry", retry_method(chat)),
    ]
    if _has(client, _BETA_CHAT):
        # client.beta.chat.completions is a resource of its own (openai 2.x):
        # its stream() calls its own create().
        methods += [(_BETA_CHAT, "create", reporting_method(chat)), (_BETA_CHAT, "parse", reporting_method(chat))]
    rewrap = lambda new: wrap_openai(new, dunetrace)  # noqa: E731 - for client.with_options()
    return cast(C, wrap_client(client, SOURCE, methods, rewrap, dunetrace))


def unwrap_openai(client: Any) -> bool:
    """Give ``client`` its own methods back. True when it was wrapped."""
    return unwrap_client(client)
