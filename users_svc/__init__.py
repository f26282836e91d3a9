"""Owns Herald's users and announces each new one on Kafka."""
