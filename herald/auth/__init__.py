"""Generated protobuf code for the auth contract; see protos/herald/auth/."""
