"""Framework integrations, one module per framework or client.

Each is installed with its extra (``pip install 'dunetrace[langchain]'``) and
imports its framework only when used, never at ``import dunetrace``.
"""
