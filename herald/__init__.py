"""Herald's shared package: the contract's generated code, the runtime both services import
(kafka/, rpc/, storage/ and a few small modules), and the developer tools (tools/)."""
