"""Keys, signatures and the authorization table, without a broker."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.envelope import Side, new_envelope
from contracts.senders import OPERATOR, authorization, build_authorization
from shared.errors import ConfigurationError, Forbidden, Unauthenticated
from shared.keys import (
    TRUSTED_FILE,
    KeyRing,
    SigningKey,
    TrustedKey,
    add_trusted,
    decode_key_bytes,
    generate_development_ring,
    load_key_ring,
    parse_signing_keys,
    read_trusted,
    revoke_trusted,
)
from shared.signatures import KEY_OPTION, SIGNATURE_OPTION, Signer, Verifier, seal

SENDERS = authorization().senders_with_keys


@pytest.fixture
def ring(tmp_path: Path) -> KeyRing:
    return load_key_ring(tmp_path / "keys", None, generate_for=SENDERS)


def envelope_json(source: Side = Side.UPSTREAM, contract: str = "create_transaction_categories") -> str:
    return new_envelope(
        contract=contract, version=1, source=source, payload={"rows": [{"category": "HOTEL", "name": "Hotel"}]}, correlation_id="c"
    ).model_dump_json()


def test_a_development_ring_has_one_private_key_per_sender_readable_by_its_owner_only(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    assert generate_development_ring(folder, SENDERS) is True
    assert generate_development_ring(folder, SENDERS) is False  # a second process finds it made
    trusted = read_trusted(folder / TRUSTED_FILE)
    assert sorted(key.sender for key in trusted) == sorted(SENDERS)
    private = list(folder.glob("*.key"))
    assert len(private) == len(SENDERS)
    assert {oct(os.stat(path).st_mode & 0o777) for path in private} == {"0o600"}


def test_a_key_never_shows_its_private_half(ring: KeyRing) -> None:
    key = ring.signer("finance")
    raw = json.loads(key.file_content())["private_key"]
    assert raw not in repr(key) and raw not in str(key)


def test_what_the_sender_signed_verifies_and_nothing_else(ring: KeyRing) -> None:
    verifier = Verifier(ring, authorization())
    body = envelope_json()
    options = Signer(ring, "project-operations").options(body)
    assert verifier.authenticate("dataverse.commands", body, options).sender == "project-operations"
    with pytest.raises(Unauthenticated, match="does not match"):
        verifier.authenticate("dataverse.commands", body.replace("Hotel", "Motel"), options)
    with pytest.raises(Unauthenticated, match="unsigned"):
        verifier.authenticate("dataverse.commands", body, {})
    with pytest.raises(Unauthenticated, match="unknown signing key"):
        verifier.authenticate("dataverse.commands", body, {**options, KEY_OPTION: "x" * 500})
    with pytest.raises(Unauthenticated, match="must be strings"):
        verifier.authenticate("dataverse.commands", body, {**options, SIGNATURE_OPTION: 5})


@settings(max_examples=200, deadline=None)
@given(signature=st.text(max_size=120), key_id=st.text(max_size=80))
def test_any_signature_option_is_refused_cleanly_never_crashes(tmp_path_factory: pytest.TempPathFactory, signature: str, key_id: str) -> None:
    ring = load_key_ring(tmp_path_factory.getbasetemp() / "fuzz-keys", None, generate_for=SENDERS)
    verifier = Verifier(ring, authorization())
    with pytest.raises(Unauthenticated):
        verifier.authenticate("dataverse.commands", envelope_json(), {KEY_OPTION: key_id, SIGNATURE_OPTION: signature})


def test_a_sender_is_heard_only_where_the_table_says(ring: KeyRing) -> None:
    verifier = Verifier(ring, authorization())
    body = envelope_json(Side.FINANCE, "msdyn_expenses")
    finance = Signer(ring, "finance").options(body)
    assert verifier.authenticate("msdyn_expenses.finance-to-bridge", body, finance).sender == "finance"
    for queue in ("msdyn_expenses.bridge-to-dataverse", "msdyn_actuals.bridge-to-finance", "dataverse.commands", "dataverse.system-jobs"):
        with pytest.raises(Forbidden, match="may not write queue"):
            verifier.authenticate(queue, body, finance)


def test_the_envelope_must_name_its_signer_as_source(ring: KeyRing) -> None:
    verifier = Verifier(ring, authorization())
    lying = new_envelope(contract="create_transaction_categories", version=1, source=Side.BRIDGE, payload={"rows": []}, correlation_id="c")
    key = verifier.authenticate("dataverse.commands", lying.model_dump_json(), seal(ring.signer("project-operations"), lying.model_dump_json()))
    with pytest.raises(Forbidden, match="envelope says source 'bridge'"):
        verifier.authorize(key, "dataverse.commands", lying)
    operator = verifier.authenticate("dataverse.commands", lying.model_dump_json(), seal(ring.signer(OPERATOR), lying.model_dump_json()))
    verifier.authorize(operator, "dataverse.commands", lying)  # an operator's replay keeps the original source


def test_rotation_signs_with_the_newest_unrevoked_key_and_trusts_both_until_revoked(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    old, new = SigningKey.generate("finance", "finance-old"), SigningKey.generate("finance", "finance-new")
    add_trusted(folder, old.trusted("2026-01-01T00:00:00+00:00"))
    add_trusted(folder, new.trusted("2026-06-01T00:00:00+00:00"))
    secrets = json.dumps([json.loads(old.file_content()), json.loads(new.file_content())])
    ring = load_key_ring(folder, secrets, generate_for=None)
    assert ring.signer("finance").key_id == "finance-new"
    assert {ring.trusted_key("finance-old").sender, ring.trusted_key("finance-new").sender} == {"finance"}

    revoke_trusted(folder, "finance-new")
    ring._reload(force=True)
    assert ring.signer("finance").key_id == "finance-old"
    assert ring.trusted_key("finance-new").revoked


def test_a_missing_ring_without_generation_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no trusted keys"):
        load_key_ring(tmp_path / "empty", None, generate_for=None)


@pytest.mark.parametrize(
    "text, problem",
    [
        ("not json", "not JSON"),
        ('{"format": "other"}', "not a dualwrite private key"),
        ('{"format": "dualwrite-ed25519-private-v1", "id": "k", "sender": "finance", "private_key": "!!"}', "not base64"),
        ('{"format": "dualwrite-ed25519-private-v1", "id": "k", "sender": "finance", "private_key": "AAAA"}', "3 bytes"),
        ('{"format": "dualwrite-ed25519-private-v1", "id": "k k", "sender": "finance", "private_key": "AAAA"}', "key id"),
    ],
)
def test_a_bad_private_key_is_refused_without_echoing_it(text: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem) as refused:
        parse_signing_keys(text, "DUALWRITE_SIGNING_KEYS")
    assert "AAAA" not in str(refused.value) and "!!" not in str(refused.value)


def test_an_openssl_style_raw_signature_verifies(ring: KeyRing) -> None:
    """What the README tells other languages to do: sign the exact bytes with Ed25519, base64 it."""
    private = Ed25519PrivateKey.generate()
    raw_public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    folder = ring.trusted_path.parent
    public = TrustedKey("portal-1", "project-operations", private.public_key(), "2026-01-01")
    add_trusted(folder, public)
    ring._reload(force=True)
    body = envelope_json()
    options = {KEY_OPTION: "portal-1", SIGNATURE_OPTION: base64.b64encode(private.sign(body.encode())).decode()}
    assert Verifier(ring, authorization()).authenticate("dataverse.commands", body, options).key_id == "portal-1"
    assert decode_key_bytes(base64.b64encode(raw_public).decode(), "k", 32) == raw_public


def test_the_authorization_table_refuses_a_command_nobody_may_send() -> None:
    text = "internal: {}\nupstream:\n  portal:\n    commands: [create_transaction_categories]\n"
    with pytest.raises(ValueError, match="nobody may send it"):
        build_authorization(text)
    with pytest.raises(ValueError, match="not an upstream command"):
        build_authorization(text.replace("create_transaction_categories", "msdyn_expenses"))


def test_table_maps_are_internal_and_every_command_has_a_sender() -> None:
    table = authorization()
    assert table.is_internal("msdyn_expenses") and table.is_internal("run_system_jobs")
    assert table.upstream_for("post_expense_reports") == ["expense-management"]
    assert table.senders("msdyn_actuals.bridge-to-finance") == {"bridge", OPERATOR}


def test_a_key_folder_that_cannot_be_made_is_a_configuration_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigurationError, match="cannot make a development key ring"):
        load_key_ring(blocker / "keys", None, generate_for=SENDERS)
