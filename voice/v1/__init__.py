"""Generated gRPC stubs for package voice.v1 (make proto). Do not edit."""
