"""Helpers for the audit tests: token building, the parity corpus, headless Chromium."""
