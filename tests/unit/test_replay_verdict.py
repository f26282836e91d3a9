"""Which dead letters `herald dlq replay` sends back, decided from their headers alone."""

from __future__ import annotations

import pytest

from herald.kafka import deadletter
from herald.tools.replay import Summary, Verdict, verdict


def letter(error_class: str = "StoreUnavailableError", **extra: str) -> dict[str, str]:
    return {
        deadletter.ORIGIN_TOPIC: "herald.users.v1.events",
        deadletter.ERROR_CLASS: error_class,
        **extra,
    }


def test_a_store_failure_is_replayed() -> None:
    assert verdict(letter()) is Verdict.REPLAY


@pytest.mark.parametrize(
    "error_class", ["DecodeError", "PoisonRecordError", "InvalidEventError", "ValueError"]
)
def test_any_other_error_is_poison_unless_included(error_class: str) -> None:
    assert verdict(letter(error_class)) is Verdict.POISON
    assert verdict(letter(error_class), include_poison=True) is Verdict.REPLAY


def test_a_class_name_is_matched_whole() -> None:
    # A forger cannot pass for a store failure with a longer or differently cased name.
    for name in ("StoreUnavailableErrorX", "storeunavailableerror", " StoreUnavailableError"):
        assert verdict(letter(name)) is Verdict.POISON


@pytest.mark.parametrize("cut", [deadletter.VALUE_TRUNCATED, deadletter.HEADERS_DROPPED])
def test_a_cut_letter_is_never_replayed(cut: str) -> None:
    headers = letter(**{cut: "true"})
    assert verdict(headers) is Verdict.TRUNCATED
    assert verdict(headers, include_poison=True) is Verdict.TRUNCATED
    assert verdict(letter("DecodeError", **{cut: "true"})) is Verdict.TRUNCATED


@pytest.mark.parametrize("missing", [deadletter.ORIGIN_TOPIC, deadletter.ERROR_CLASS])
def test_a_letter_without_its_headers_is_malformed(missing: str) -> None:
    headers = letter()
    del headers[missing]
    assert verdict(headers) is Verdict.MALFORMED
    assert verdict(headers, include_poison=True) is Verdict.MALFORMED
    assert verdict({**headers, missing: ""}) is Verdict.MALFORMED


def test_no_headers_at_all_is_malformed() -> None:
    assert verdict({}) is Verdict.MALFORMED
    assert verdict({"ce_type": "herald.users.v1.UserCreated"}) is Verdict.MALFORMED


def test_the_summary_reads_as_a_sentence() -> None:
    assert str(Summary(replayed=2, poison=1, truncated=0, malformed=3)) == (
        "replayed 2, skipped 1 as poison, 0 as truncated, 3 as malformed"
    )
