"""Kafka as both services use it: client settings, the batch sender, CloudEvents headers, topics."""
