"""Load and soak tests: many sessions streaming real speech at once, with Locust."""
