"""Deployment files (Docker, Compose, Kubernetes) and their offline checks (deploy/check.py)."""
