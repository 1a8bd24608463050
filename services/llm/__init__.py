"""Language model service: streaming replies with per-session history and instant cancel."""
