"""The WebSocket gateway: one session per socket, chaining stt -> llm -> tts over gRPC."""
