"""Speech synthesis service: text deltas in, sentence-chunked streaming PCM out."""
