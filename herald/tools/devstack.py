"""`herald up`: a local broker and both services in one terminal, stopped together by Ctrl-C.

Plaintext on loopback with no tokens (`make run`), or, with `secure`, everything on (`make
run-secure`): Kafka SASL_SSL with Herald's ACLs, each service logging in as its own
principal, gRPC with mTLS and tokens required. Either way it prints how to call it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from herald.kafka.acls import AUTH_SVC, USERS_SVC, grants
from herald.lifecycle import shutdown_event
from herald.tools.certs import DEFAULT_OUT
from herald.tools.localkafka import LocalKafka
from herald.tools.processes import ServiceProcess
from herald.tools.secure_files import SecureFiles
from herald.tools.topic_admin import ensure_access, ensure_topics

logger = logging.getLogger(__name__)

# The principal each service logs in to a secure Kafka as (herald.kafka.acls grants them).
PRINCIPALS = {
    "users_svc": USERS_SVC.removeprefix("User:"),
    "auth_svc": AUTH_SVC.removeprefix("User:"),
}


def run_stack(
    cluster: LocalKafka,
    *,
    users_port: int,
    auth_port: int,
    grpcurl: str,
    secure: SecureFiles | None = None,
) -> int:
    """Start what is not running, print how to call it, and stop what we started on a signal."""
    stopping = shutdown_event()
    grpcurl = _near(Path(grpcurl)) if Path(grpcurl).is_absolute() else grpcurl
    if secure is None:
        print("Dev mode: loopback only, plaintext, no tokens (`make run-secure` turns all on).")
    reuse_broker = _start_broker(cluster)
    services: list[ServiceProcess] = []
    try:
        _ensure_topics(cluster, secure)
        for module, label, port in (
            ("users_svc", "users", users_port),
            ("auth_svc", "auth ", auth_port),
        ):
            services.append(_service(cluster, secure, module, label, port))
            services[-1].spawn()
        for service in services:
            service.wait_serving(timeout_s=60)
        users, auth = f"127.0.0.1:{users_port}", f"127.0.0.1:{auth_port}"
        if secure is None:
            print(_how_to_call(grpcurl, users, auth), flush=True)
        else:
            print(_how_to_call_securely(grpcurl, users, auth, secure, cluster), flush=True)
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


def _start_broker(cluster: LocalKafka) -> bool:
    """Start the cluster unless it runs already; return whether it did (so it stays up)."""
    if all(pid is not None for pid in cluster.status().values()):
        print(f"Using the Kafka already running at {cluster.bootstrap_servers}")
        return True
    print(f"Starting Kafka ({len(cluster.nodes)} node(s)); broker logs in {cluster.run_dir}")
    seconds = cluster.start()
    print(f"Kafka ready at {cluster.bootstrap_servers} in {seconds:.1f} s")
    return False


def _ensure_topics(cluster: LocalKafka, secure: SecureFiles | None) -> None:
    """Herald's topics, and on a secure cluster its ACLs, made as the cluster's super user."""
    admin = cluster.kafka_security()
    ensure_topics(cluster.bootstrap_servers, security=admin)
    if secure is not None:
        ensure_access(cluster.bootstrap_servers, grants(), security=admin)


def _service(
    cluster: LocalKafka, secure: SecureFiles | None, module: str, label: str, port: int
) -> ServiceProcess:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap_servers,
        "USERS_DATA_DIR": str(cluster.run_dir.parent / "users-svc"),
        "AUTH_DATA_DIR": str(cluster.run_dir.parent / "auth-svc"),
    }
    if secure is None:
        return ServiceProcess(module, env, label=label, port=port, own_session=True)
    env |= secure.server_env() | cluster.client_env(PRINCIPALS[module])
    tls = secure.client_tls()
    return ServiceProcess(module, env, label=label, port=port, own_session=True, tls=tls)


CREATE = '{"name": "Ada Lovelace", "email": "ada@example.com"}'
USER_ID = "<id from CreateUser>"


def _how_to_call(grpcurl: str, users: str, auth: str) -> str:
    return f"""
Herald is up. users_svc on {users}, auth_svc on {auth}. Ctrl-C stops everything.

  {grpcurl} -plaintext {users} list
  {grpcurl} -plaintext {users} describe herald.users.v1.UserService
  {grpcurl} -plaintext -d '{CREATE}' \\
      {users} herald.users.v1.UserService/CreateUser
  {grpcurl} -plaintext -d '{{"id": "{USER_ID}"}}' \\
      {users} herald.users.v1.UserService/GetUser
  {grpcurl} -plaintext -d '{{"user_id": "{USER_ID}"}}' \\
      {auth} herald.auth.v1.AuthService/GetAccount
  {grpcurl} -plaintext -d '{{"id": "{USER_ID}"}}' \\
      {users} herald.users.v1.UserService/DeleteUser
"""


def _how_to_call_securely(
    grpcurl: str, users: str, auth: str, secure: SecureFiles, cluster: LocalKafka
) -> str:
    herald = os.environ.get("HERALD", ".venv/bin/herald")
    tls = secure.tls_dir
    files = f"-cacert {_near(tls / 'ca.pem')} -cert {_near(tls / 'client.pem')}"
    files += f" -key {_near(tls / 'client.key')}"
    # `herald token` signs with .run/secure's key unless told otherwise.
    key = ""
    if secure.folder.resolve() != DEFAULT_OUT.resolve():
        key = f" --key {_near(secure.folder / 'jwt' / 'signing.key')}"

    def bearer(subject: str, scope: str = "") -> str:
        scoped = f' --scope "{scope}"' if scope else ""
        return f'-H "authorization: Bearer $({herald} token --sub {subject}{scoped}{key})"'

    admin = cluster.client_env("herald-admin")
    kafka = " ".join(
        f"{name}={_near(Path(value)) if name.endswith('_FILE') else value}"
        for name, value in admin.items()
        if name != "KAFKA_BOOTSTRAP_SERVERS"
    )
    return f"""
Herald is up, secured. users_svc on {users}, auth_svc on {auth}: mTLS, a token on every call.
Kafka on {cluster.bootstrap_servers}: SASL_SSL (SCRAM-SHA-512), ACLs. Ctrl-C stops everything.
What a caller needs is under {_near(secure.folder)}/ (tls/, jwt/, kafka/<principal>.password).

  {grpcurl} {files} {users} list
  {grpcurl} {files} \\
      {bearer("signup", "users.create")} \\
      -d '{CREATE}' {users} herald.users.v1.UserService/CreateUser
  {grpcurl} {files} \\
      {bearer(USER_ID)} \\
      -d '{{"id": "{USER_ID}"}}' {users} herald.users.v1.UserService/GetUser
  {grpcurl} {files} \\
      {bearer(USER_ID)} \\
      -d '{{"user_id": "{USER_ID}"}}' {auth} herald.auth.v1.AuthService/GetAccount
  {grpcurl} {files} \\
      {bearer(USER_ID)} \\
      -d '{{"id": "{USER_ID}"}}' {users} herald.users.v1.UserService/DeleteUser
  {kafka} \\
      {herald} events tail --from-beginning --bootstrap-servers {cluster.bootstrap_servers}
"""


def _near(path: Path) -> str:
    """`path` relative to the working directory when it is inside it: shorter to paste."""
    absolute, here = path.resolve(), Path.cwd()
    return str(absolute.relative_to(here)) if absolute.is_relative_to(here) else str(absolute)
