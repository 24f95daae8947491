"""Report the LLM calls an Anthropic client makes inside a Dunetrace run.

.. code-block:: python

    client = dt.wrap_anthropic(Anthropic())     # or AsyncAnthropic()
    with dt.run("support-agent", user_input=question):
        client.messages.create(model="claude-sonnet-4-5", max_tokens=1024, messages=[...])

``messages.create`` (whole or ``stream=True``), ``messages.parse`` and
``messages.stream`` emit
``llm.called`` / ``llm.responded`` with the model, token counts (cached
prompt tokens included), latency, output length and hash, and the finish
reason in the detectors' words: ``end_turn`` and ``stop_sequence`` are
``stop``, ``max_tokens`` is ``length``, ``tool_use`` is ``tool_calls``.
Streams are reported when they end, are closed, or fail. Outside a run the
client behaves exactly as before. API errors become ``finish_reason="error"``
plus an ``external.signal`` (``rate_limit``, ``timeout``, ``api_error``) and
are raised to the caller unchanged.

The client returned is the same object, still an ``Anthropic``; wrapping
twice is a no-op and :func:`unwrap_anthropic` restores it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar, cast

from .._client_wrapping import is_wrapped, reporting_method, retry_method, unwrap_client, wrap_client
from .._llm_calls import Endpoint, http_errors
from .readers import MessageStreamReader, messages_prompt, model_of, read_message
from .streams import stream_method

if TYPE_CHECKING:
    from dunetrace import Dunetrace

__all__ = ["is_wrapped", "unwrap_anthropic", "wrap_anthropic"]

C = TypeVar("C")

SOURCE = "anthropic"


def _import_anthropic() -> Any:
    try:
        import anthropic
    except ImportError as exc:
        raise ImportError(
            "dunetrace.integrations.anthropic needs the anthropic package: pip install 'dunetrace[anthropic]'"
        ) from exc
    return anthropic


def wrap_anthropic(client: C, dunetrace: Dunetrace | None = None) -> C:
    """Make ``client`` (``Anthropic`` or ``AsyncAnthropic``) report its LLM
    calls into the current run, and return it. ``dunetrace``, when given,
    unwraps it at its shutdown. Prefer ``dt.wrap_anthropic(client)``."""
    anthropic = _import_anthropic()
    if not isinstance(client, (anthropic.Anthropic, anthropic.AsyncAnthropic)):
        raise TypeError(
            f"wrap_anthropic() takes an anthropic.Anthropic or anthropic.AsyncAnthropic client; got {client!r}"
        )
    timeouts, transport = http_errors(anthropic)
    errors = ((anthropic.APITimeoutError, *timeouts), (anthropic.RateLimitError,), (anthropic.APIError, *transport))
    endpoint = Endpoint(
        "anthropic.messages", SOURCE, model_of, messages_prompt, read_message, MessageStreamReader, errors
    )
    methods = [
        (("messages",), "create", reporting_method(endpoint)),
        # Structured outputs: parse() posts by itself, not through create().
        (("messages",), "parse", reporting_method(endpoint)),
        (("messages",), "stream", stream_method(endpoint)),
        ((), "_sleep_for_retry", retry_method(endpoint)),
    ]
    rewrap = lambda new: wrap_anthropic(new, dunetrace)  # noqa: E731 - for client.with_options()
    return cast(C, wrap_client(client, SOURCE, methods, rewrap, dunetrace))


def unwrap_anthropic(client: Any) -> bool:
    """Give ``client`` its own methods back. True when it was wrapped."""
    return unwrap_client(client)
