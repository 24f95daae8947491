"""Offline example agents; `dunetrace demo` runs them."""
