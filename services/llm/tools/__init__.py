"""The agent's tools: what the model may call, how each runs, and the agent definition file."""
