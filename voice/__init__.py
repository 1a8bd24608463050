"""What every process of the voice agent cluster shares."""
