"""Activation: deliver segment entry/exit events to marketing tools (signed webhooks, retries, dead letters)."""
