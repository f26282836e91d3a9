"""ensure_acls against a real broker: the bindings go out as a CreateAcls request the broker
reads. The test run's broker has no authorizer, so it answers SECURITY_DISABLED for each,
which must come back as the one clear error, not a hang or a raw KafkaException.

Granting on a SASL_SSL broker with StandardAuthorizer, as herald-admin, is left to the test
of the secure launcher: `ensure_acls(AdminClient(admin_config(bootstrap, "t", security=…)),
grants())` twice, then each principal's allowed and denied calls."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AdminClient

from herald.kafka.acls import ensure_acls, grants
from herald.kafka.config import admin_config


def test_a_broker_without_an_authorizer_refuses_acls_clearly(kafka_bootstrap: str) -> None:
    admin = AdminClient(admin_config(kafka_bootstrap, "test-acls"))
    with pytest.raises(ValueError, match="the brokers have no authorizer"):
        ensure_acls(admin, grants(), timeout_s=15)
