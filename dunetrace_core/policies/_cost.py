"""Estimated cost of a model call in US dollars, from the maintained price
table of the ``genai-prices`` package (the ``dunetrace[prices]`` extra);
no price is written down here."""

from __future__ import annotations

import logging
from typing import Any

from ..log import warn_once
from ._model import PolicyError

__all__ = ["Prices"]


class Prices:
    """Prices model calls; a model the table does not know costs nothing,
    and says so once."""

    def __init__(self) -> None:
        try:
            from genai_prices import Usage, calc_price
        except ImportError as exc:
            raise PolicyError(
                "cost_usd policies need the price table: pip install 'dunetrace[prices]' (genai-prices)"
            ) from exc
        self._usage: Any = Usage
        self._calc: Any = calc_price
        self._unknown: set[str] = set()

    def cost(self, model: str | None, input_tokens: int, output_tokens: int) -> float:
        if not model:
            warn_once(
                "price:no-model",
                "dunetrace: a model call without a model name adds no cost to cost_usd policies",
            )
            return 0.0
        if model in self._unknown:
            return 0.0
        try:
            result = self._calc(self._usage(input_tokens=input_tokens, output_tokens=output_tokens), model_ref=model)
        except LookupError:
            self._unknown.add(model)
            warn_once(
                f"price:{model}",
                "dunetrace: genai-prices has no price for model %r; its calls add no cost to cost_usd policies",
                model,
                level=logging.WARNING,
            )
            return 0.0
        return float(result.total_price)
