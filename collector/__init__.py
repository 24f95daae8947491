"""The local collector: `dunetrace serve`."""
