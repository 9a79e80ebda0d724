"""OpenAI wire types (the client side).

Import submodules by name: ``from shim.openai import chat``.
"""
