"""The latency benchmark: end of user speech -> first agent audio, measured at the client."""
