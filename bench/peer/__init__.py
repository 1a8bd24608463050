"""make bench-peer: this project beside a stock Pipecat 1.14 pipeline with the same models."""
