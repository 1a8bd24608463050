"""Capacity planning: the cost model (cost.py) from a load run and a discrete-event
simulation of a day (sim.py, policies.py, day.py)."""
