"""An OpenAI-compatible sandbox provider: the part of the OpenAI REST API Switchboard uses.

Run it with ``python -m sandbox``; embed it in tests with ``sandbox.testing.running_sandbox``.
"""
