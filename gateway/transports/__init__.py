"""Transports: how a client's audio and events reach a session, and how the session's reach it.

A transport owns its wire format, codecs and sample rates; the session sees PCM16 at the
transport's input rate, start requests, and the turn machine's client output (gateway/turns).
``base.py`` is the interface; ``browser.py`` the WebSocket protocol of docs/protocol.md.
"""
