"""Developer and operator tools: the `herald` command, the local Kafka, tailing and replaying.

The services never import from here; a tool may import anything.
"""
