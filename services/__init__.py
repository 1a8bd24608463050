"""The voice agent stage services: stt, llm and tts, each its own process."""
