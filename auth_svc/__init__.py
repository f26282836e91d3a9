"""Keeps an auth account for each user, built from the events it consumes."""
