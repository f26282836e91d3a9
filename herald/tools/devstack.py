"""`herald up`: a local broker and both services in one terminal, stopped together by Ctrl-C."""

from __future__ import annotations

import logging

from herald.lifecycle import shutdown_event
from herald.tools.localkafka import LocalKafka
from herald.tools.processes import ServiceProcess
from herald.tools.topic_admin import ensure_topics

logger = logging.getLogger(__name__)


def run_stack(cluster: LocalKafka, *, users_port: int, auth_port: int, grpcurl: str) -> int:
    """Start what is not running, print how to call it, and stop what we started on a signal."""
    stopping = shutdown_event()
    reuse_broker = all(pid is not None for pid in cluster.status().values())
    if reuse_broker:
        print(f"Using the Kafka already running at {cluster.bootstrap_servers}")
    else:
        print(f"Starting Kafka ({len(cluster.nodes)} node(s)); broker logs in {cluster.run_dir}")
        seconds = cluster.start()
        print(f"Kafka ready at {cluster.bootstrap_servers} in {seconds:.1f} s")
    services: list[ServiceProcess] = []
    try:
        ensure_topics(cluster.bootstrap_servers)
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap_servers,
            "USERS_DATA_DIR": str(cluster.run_dir.parent / "users-svc"),
            "AUTH_DATA_DIR": str(cluster.run_dir.parent / "auth-svc"),
        }
        for module, label, port in (
            ("users_svc", "users", users_port),
            ("auth_svc", "auth ", auth_port),
        ):
            service = ServiceProcess(module, env, label=label, port=port, own_session=True)
            services.append(service)
            service.spawn()
        for service in services:
            service.wait_serving(timeout_s=60)
        print(_how_to_call(grpcurl, users_port, auth_port), flush=True)
        while not stopping.wait(0.5):
            for service in services:
                if not service.running():
                    print(f"{service.module} exited with {service.stop()}; stopping")
                    return 1
        return 0
    finally:
        for service in reversed(services):
            service.stop(grace_s=10)
        if not reuse_broker:
            print("Stopping Kafka")
            cluster.stop()


def _how_to_call(grpcurl: str, users_port: int, auth_port: int) -> str:
    users = f"127.0.0.1:{users_port}"
    auth = f"127.0.0.1:{auth_port}"
    create = '{"name": "Ada Lovelace", "email": "ada@example.com"}'
    return f"""
Herald is up. users_svc on {users}, auth_svc on {auth}. Ctrl-C stops everything.
Dev mode: loopback only, plaintext, no tokens (README, *Serving TLS*, says how to secure it).

  {grpcurl} -plaintext {users} list
  {grpcurl} -plaintext {users} describe herald.users.v1.UserService
  {grpcurl} -plaintext -d '{create}' \\
      {users} herald.users.v1.UserService/CreateUser
  {grpcurl} -plaintext -d '{{"id": "<id from CreateUser>"}}' \\
      {users} herald.users.v1.UserService/GetUser
  {grpcurl} -plaintext -d '{{"user_id": "<id from CreateUser>"}}' \\
      {auth} herald.auth.v1.AuthService/GetAccount
"""
