"""Speech synthesis service: text deltas in, streaming PCM out (a short clause, then sentences)."""
