"""CrewAI integration: every crew kickoff reported as a Dunetrace run.

::

    from dunetrace import Dunetrace
    from dunetrace.integrations.crewai import instrument

    dt = Dunetrace()
    instrument(dt, agent_id="research-crew")
    crew.kickoff(inputs={...})

A kickoff is a run of ``agent_id``; each agent's execution of a task is a
child run of ``"<agent_id>.<agent role>"``, with its LLM calls and tool
calls. Installed with ``pip install 'dunetrace[crewai]'``; importing this
module does not import CrewAI, :func:`instrument` does.
"""

from __future__ import annotations

from .adapter import installed, instrument, uninstrument
from .translator import Translator

__all__ = ["Translator", "installed", "instrument", "uninstrument"]
