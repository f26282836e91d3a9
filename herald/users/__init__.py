"""Generated protobuf code for the users contract; see protos/herald/users/."""
