"""Speech-to-text service: streaming faster-whisper with voice-activity endpointing."""
