"""Herald: the shared contract and the Kafka and gRPC plumbing both services use."""
