"""Generated code for herald.auth.v1 (protos/herald/auth/v1): `make protos` rewrites it."""
