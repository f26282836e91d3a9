"""Generated code for herald.users.v1 (protos/herald/users/v1): `make protos` rewrites it."""
