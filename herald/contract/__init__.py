"""What both services agree a user and its events are, whatever carries them: which names,
emails and ids are acceptable, and how an event's id follows from its user and version.

users_svc checks requests with these rules before it stores them; auth_svc checks events
with the same rules before it applies them, so nothing users_svc would refuse gets in
through the topic. Pure functions, no gRPC, Kafka or SQL.
"""
