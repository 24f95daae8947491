"""``DunetraceMiddleware``: applies ``switch_model`` and ``inject_prompt``
policies (and ``stop``) to a ``langchain.agents.create_agent`` agent, through
langchain 1.x's ``AgentMiddleware``. The run it acts on is the one the
callback handler (or ``instrument()``) opened for the invoke, so the
middleware goes with the handler::

    agent = create_agent(model, tools, middleware=[DunetraceMiddleware()])
    agent.invoke(inputs, config={"callbacks": [DunetraceCallbackHandler(dt)]})

Imports langchain, so it is only imported on first use (see ``__init__.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from langchain.agents.middleware import AgentMiddleware, ModelRequest
from langchain_core.messages import HumanMessage

from dunetrace.log import ErrorGuard, warn_once
from dunetrace.run import Run, get_current_run

from .translator import applied_by_middleware

__all__ = ["DunetraceMiddleware"]

_G_BEFORE = ErrorGuard("langchain.middleware.before_model")
_G_WRAP = ErrorGuard("langchain.middleware.wrap_model_call")

ModelSource = Mapping[str, Any] | Callable[[str], Any] | None


class DunetraceMiddleware(AgentMiddleware):
    """Applies the policies of the current Dunetrace run to each model call
    of a ``create_agent`` agent: ``stop`` raises ``PolicyViolation`` before
    the call, ``switch_model`` calls the model it names instead,
    ``inject_prompt`` adds its message to the conversation (as a user
    message) before the call.

    ``models`` turns a policy's model name into a chat model: a mapping of
    names to models, or a function of the name; by default
    ``langchain.chat_models.init_chat_model(name)``. A name that cannot be
    resolved is logged once and the agent's own model is kept.
    """

    def __init__(self, models: ModelSource = None) -> None:
        super().__init__()
        if models is not None and not (isinstance(models, Mapping) or callable(models)):
            raise TypeError(f"DunetraceMiddleware(models=...) takes a mapping or a function of a name; got {models!r}")
        self._models = models
        self._resolved: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return "DunetraceMiddleware"

    # -- inject_prompt: into the conversation, so later calls see it too -------

    def before_model(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        run = get_current_run()
        if run is None:
            return None
        run.raise_if_stopped()
        with _G_BEFORE:
            added = run.pop_prompt_addition()
            if added is not None:
                return {"messages": [HumanMessage(content=added)]}
        return None

    async def abefore_model(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        return self.before_model(state, runtime)

    # -- switch_model: this call and every later one of the run ---------------

    def _request(self, run: Run | None, request: ModelRequest) -> ModelRequest:
        if run is None:
            return request
        run.raise_if_stopped()
        with _G_WRAP:
            name = run.model_override
            if name is not None:
                model = self._model(name)
                if model is not None:
                    applied_by_middleware.add(run)
                    return request.override(model=model)
        return request

    def wrap_model_call(self, request: ModelRequest, handler: Callable[[ModelRequest], Any]) -> Any:
        return handler(self._request(get_current_run(), request))

    async def awrap_model_call(self, request: ModelRequest, handler: Callable[[ModelRequest], Awaitable[Any]]) -> Any:
        return await handler(self._request(get_current_run(), request))

    def _model(self, name: str) -> Any:
        with self._lock:
            if name in self._resolved:
                return self._resolved[name]
        model: Any = None
        try:
            source = self._models
            if isinstance(source, Mapping):
                model = source.get(name)
                if model is None:
                    raise LookupError(f"not in DunetraceMiddleware(models=...), which has {sorted(source)}")
            elif callable(source):
                model = source(name)
            else:
                from langchain.chat_models import init_chat_model

                model = init_chat_model(name)
        except Exception as exc:  # the user's mapping or provider: logged, the agent goes on
            warn_once(
                f"switch-model:{name}",
                "dunetrace: switch_model to %r: no chat model for that name (%r); the agent keeps its model",
                name,
                exc,
            )
            model = None
        with self._lock:
            self._resolved[name] = model
        return model
