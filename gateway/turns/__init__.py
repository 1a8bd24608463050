"""The conversation core: a pure turn machine (events with timestamps in, actions out).

Nothing here does I/O: no asyncio, no gRPC, no sockets. ``TurnMachine.step(event, now)`` is
the whole interface; the session's driver (gateway/driver.py) feeds it what the stages and the
client say and carries out the actions it returns.
"""
