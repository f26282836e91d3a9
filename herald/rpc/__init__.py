"""gRPC as both services use it: the server bootstrap, typed errors, reflection, health clients."""
