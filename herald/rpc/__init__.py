"""gRPC as both services use it: the grpc.aio server, its limits and health service, typed
errors, reflection, and the health clients."""
