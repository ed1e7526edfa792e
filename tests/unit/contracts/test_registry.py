"""The contract registry: decode, refuse with a reason that names the field, upcast in order."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, ClassVar

import pytest

from contracts.batch import Batch, Row, Rows
from contracts.envelope import Side
from contracts.fields import Code
from contracts.money import Amount, CurrencyCode
from contracts.projects import CREATE_EXPENSE_ESTIMATES, CreateExpenseEstimatesV2, estimates_v1_to_v2
from contracts.registry import Contract, ContractRegistry, Kind, Scope, build_registry
from shared.errors import InvalidContract, PermanentError, UnknownContract, UnknownContractVersion


def batch_of(rows):
    """A payload: the rows of one batch."""
    return {"rows": rows}


# --- decoding a good message ---------------------------------------------------------------


def test_a_good_envelope_is_decoded_into_the_newest_payload(registry, wire, estimate_row_v2):
    body = wire("create_expense_estimates", 2, batch_of([estimate_row_v2]), legal_entity="USMF")

    decoded = registry.decode(body)

    assert decoded.envelope.contract == "create_expense_estimates"
    assert decoded.envelope.legal_entity == "USMF"
    assert decoded.envelope.source is Side.UPSTREAM
    assert decoded.version == 2
    assert isinstance(decoded.payload, CreateExpenseEstimatesV2)
    [line] = decoded.rows
    assert (line.project_id, line.expense_category) == ("PRJ-100", "HOTEL")
    assert line.quantity == Decimal("3")
    assert line.unit_cost == Decimal("120.00")


def test_a_body_in_bytes_decodes_like_text(registry, wire, estimate_row_v2):
    body = wire("create_expense_estimates", 2, batch_of([estimate_row_v2]))

    assert registry.decode(body.encode()).rows == registry.decode(body).rows


# --- what is refused, and why ----------------------------------------------------------------


@pytest.mark.parametrize("body", ["{", "not json", "", b"\xff\xfe\x00", "[]", "null", '"an envelope"'])
def test_a_body_that_is_not_a_json_object_is_an_invalid_contract(registry, body):
    with pytest.raises(InvalidContract, match=r"^envelope\b"):
        registry.decode(body)


def test_an_envelope_missing_its_correlation_id_names_that_field(registry, envelope, estimate_row_v2):
    document = envelope("create_expense_estimates", 2, batch_of([estimate_row_v2]))
    del document["correlation_id"]

    with pytest.raises(InvalidContract, match=r"envelope\.correlation_id: Field required"):
        registry.decode(json.dumps(document))


def test_an_unknown_contract_is_refused_by_name(registry, wire):
    with pytest.raises(UnknownContract, match="'msdyn_unknownthings'"):
        registry.decode(wire("msdyn_unknownthings", 1, {"rows": []}))


@pytest.mark.parametrize("version", [3, 99])
def test_a_version_after_the_latest_is_unknown(registry, wire, estimate_row_v2, version):
    with pytest.raises(UnknownContractVersion, match=rf"no version {version} \(known: 1\.\.2\)"):
        registry.decode(wire("create_expense_estimates", version, batch_of([estimate_row_v2])))


def test_version_zero_is_unknown(registry, envelope, estimate_row_v2):
    # The envelope refuses it before any contract is consulted; from Python it is refused too.
    with pytest.raises(InvalidContract, match=r"envelope\.version"):
        registry.decode(json.dumps(envelope("create_expense_estimates", 0, batch_of([estimate_row_v2]))))
    with pytest.raises(UnknownContractVersion):
        CREATE_EXPENSE_ESTIMATES.model(0)


def test_version_latest_plus_one_is_unknown_for_every_contract(registry, wire):
    for contract in registry:
        with pytest.raises(UnknownContractVersion, match=contract.name):
            registry.decode(wire(contract.name, contract.latest + 1, {"rows": []}))


@pytest.mark.parametrize(
    "change, path, reason",
    [
        (lambda row: row.pop("currency"), "payload.rows.0.currency", "Field required"),
        (lambda row: row.update(unit_cost="-0.01"), "payload.rows.0.unit_cost", "greater than or equal to 0"),
        (lambda row: row.update(currency="usd"), "payload.rows.0.currency", "not an ISO 4217 currency code"),
        (lambda row: row.update(currency="XYZ"), "payload.rows.0.currency", "not an ISO 4217 currency code"),
        (lambda row: row.update(unit_cost="10.005"), "payload.rows.0.unit_cost", "no more than 2 decimal places"),
        (lambda row: row.update(quantity="0"), "payload.rows.0.quantity", "greater than 0"),
        (lambda row: row.update(date="2026-02-30"), "payload.rows.0.date", "date"),
        (lambda row: row.update(reviewer="someone"), "payload.rows.0.reviewer", "Extra inputs are not permitted"),
    ],
)
def test_a_bad_row_is_an_invalid_contract_naming_the_field(registry, wire, estimate_row_v2, change, path, reason):
    change(estimate_row_v2)

    with pytest.raises(InvalidContract) as refused:
        registry.decode(wire("create_expense_estimates", 2, batch_of([estimate_row_v2])))

    assert path in str(refused.value)
    assert reason in str(refused.value)


def test_every_problem_of_a_batch_is_reported_at_once(registry, wire, estimate_row_v2):
    second = {**estimate_row_v2, "line_number": 2, "currency": "EURO"}
    first = {**estimate_row_v2, "unit_cost": "-5"}

    with pytest.raises(InvalidContract) as refused:
        registry.decode(wire("create_expense_estimates", 2, batch_of([first, second])))

    assert "payload.rows.0.unit_cost" in str(refused.value)
    assert "payload.rows.1.currency" in str(refused.value)


@pytest.mark.parametrize(
    "change, path",
    [
        (lambda row: row.pop("amount"), "payload.rows.0.amount"),
        (lambda row: row.update(amount="-12.50"), "payload.rows.0.amount"),
        (lambda row: row.update(currency="usd"), "payload.rows.0.currency"),
    ],
)
def test_a_bad_row_of_an_older_version_is_reported_in_the_publishers_own_terms(
    registry, wire, estimate_row_v1, change, path
):
    """A v1 publisher sent ``amount``; telling it about v2's ``unit_cost`` would not help it."""
    change(estimate_row_v1)

    with pytest.raises(InvalidContract) as refused:
        registry.decode(wire("create_expense_estimates", 1, batch_of([estimate_row_v1])))

    assert path in str(refused.value)
    assert "create_expense_estimates v1" in str(refused.value)
    assert "unit_cost" not in str(refused.value)


def test_a_payload_without_rows_is_refused(registry, wire):
    with pytest.raises(InvalidContract, match=r"payload\.rows: Field required"):
        registry.decode(wire("create_expense_estimates", 2, {}))


# --- company scope -------------------------------------------------------------------------


def test_a_company_scoped_contract_without_a_legal_entity_is_refused(registry, wire, estimate_row_v2):
    body = wire("create_expense_estimates", 2, batch_of([estimate_row_v2]), legal_entity=None)

    with pytest.raises(InvalidContract, match=r"envelope\.legal_entity: required by company-scoped"):
        registry.decode(body)


def test_a_shared_contract_naming_a_legal_entity_is_refused(registry, wire):
    payload = {"rows": [{"category": "TRAVEL", "name": "Travel"}]}

    with pytest.raises(InvalidContract, match=r"envelope\.legal_entity: .* shared by all companies"):
        registry.decode(wire("msdyn_transactioncategories", 1, payload, legal_entity="USMF"))


def test_a_shared_contract_without_a_legal_entity_is_accepted(registry, wire):
    payload = {"rows": [{"category": "travel", "name": "Travel"}]}

    decoded = registry.decode(wire("msdyn_transactioncategories", 1, payload, legal_entity=None, source="dataverse"))

    assert [row.category for row in decoded.rows] == ["travel"]  # kept exactly as sent
    assert decoded.envelope.legal_entity is None


# --- upcasting -----------------------------------------------------------------------------


def test_a_version_1_estimate_reaches_consumers_as_one_unit_at_its_total(registry, wire, estimate_row_v1):
    decoded = registry.decode(wire("create_expense_estimates", 1, batch_of([estimate_row_v1])))

    assert decoded.version == 2
    assert decoded.envelope.version == 1  # what the publisher wrote is kept for the record
    assert isinstance(decoded.payload, CreateExpenseEstimatesV2)
    [line] = decoded.rows
    assert line.quantity == Decimal("1")
    assert line.unit_cost == Decimal("360.00")
    assert (line.project_id, line.line_number, line.currency) == ("PRJ-100", 1, "USD")


def test_the_estimate_upcaster_is_pure(estimate_row_v1):
    payload = {"rows": [dict(estimate_row_v1)]}
    before = json.dumps(payload, sort_keys=True)

    upcast = estimates_v1_to_v2(payload)

    assert json.dumps(payload, sort_keys=True) == before
    assert upcast["rows"][0] == {
        "project_id": "PRJ-100",
        "line_number": 1,
        "expense_category": "HOTEL",
        "date": "2026-03-02",
        "quantity": "1",
        "unit_cost": "360.00",
        "currency": "USD",
    }
    assert estimates_v1_to_v2(payload) == upcast


def test_a_version_2_message_is_not_upcast(registry, wire, estimate_row_v2):
    decoded = registry.decode(wire("create_expense_estimates", 2, batch_of([estimate_row_v2])))

    assert decoded.rows[0].quantity == Decimal("3")


# A synthetic contract with three versions, registered on its own: v1 has a total, v2 splits
# it into quantity and unit cost, v3 adds a currency. Each step records that it ran.


class LineV1(Row):
    line: Code
    total: Amount


class LineV2(Row):
    line: Code
    quantity: int
    unit_cost: Amount


class LineV3(Row):
    line: Code
    quantity: int
    unit_cost: Amount
    currency: CurrencyCode


class LinesV1(Batch):
    key_fields: ClassVar[tuple[str, ...]] = ("line",)
    rows: Rows[LineV1]


class LinesV2(Batch):
    key_fields: ClassVar[tuple[str, ...]] = ("line",)
    rows: Rows[LineV2]


class LinesV3(Batch):
    key_fields: ClassVar[tuple[str, ...]] = ("line",)
    rows: Rows[LineV3]


def synthetic_contract(steps_taken: list[str], first_step=None) -> Contract:
    def v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
        steps_taken.append("v1->v2")
        rows = [{"line": r["line"], "quantity": 1, "unit_cost": r["total"]} for r in payload["rows"]]
        return {"rows": rows}

    def v2_to_v3(payload: dict[str, Any]) -> dict[str, Any]:
        steps_taken.append("v2->v3")
        assert "total" not in payload["rows"][0], "v2->v3 must run after v1->v2"
        return {"rows": [{**r, "currency": "EUR"} for r in payload["rows"]]}

    return Contract(
        name="synthetic_lines",
        kind=Kind.COMMAND,
        scope=Scope.LEGAL_ENTITY,
        versions=(LinesV1, LinesV2, LinesV3),
        upcasters=(first_step or v1_to_v2, v2_to_v3),
    )


def test_a_three_version_contract_upcasts_v1_to_v3_through_both_steps_in_order(wire):
    steps: list[str] = []
    registry = ContractRegistry()
    registry.register(synthetic_contract(steps))

    decoded = registry.decode(wire("synthetic_lines", 1, {"rows": [{"line": "a", "total": "42.50"}]}))

    assert steps == ["v1->v2", "v2->v3"]
    assert decoded.version == 3
    assert isinstance(decoded.payload, LinesV3)
    assert decoded.rows == [LineV3(line="a", quantity=1, unit_cost=Decimal("42.50"), currency="EUR")]


def test_a_three_version_contract_upcasts_v2_through_the_last_step_only(wire):
    steps: list[str] = []
    registry = build_registry([synthetic_contract(steps)])

    decoded = registry.decode(wire("synthetic_lines", 2, {"rows": [{"line": "a", "quantity": 2, "unit_cost": "5"}]}))

    assert steps == ["v2->v3"]
    assert decoded.rows[0].currency == "EUR"


def test_a_three_version_contract_at_its_latest_version_runs_no_upcaster(wire):
    steps: list[str] = []
    registry = build_registry([synthetic_contract(steps)])
    row = {"line": "a", "quantity": 2, "unit_cost": "5", "currency": "SEK"}

    decoded = registry.decode(wire("synthetic_lines", 3, {"rows": [row]}))

    assert steps == []
    assert decoded.rows[0].currency == "SEK"


@pytest.mark.parametrize("failure", [KeyError("total"), TypeError("bad"), ValueError("bad"), AttributeError("bad")])
def test_an_upcaster_that_fails_on_an_old_payload_makes_an_invalid_contract(wire, failure):
    def failing_step(payload: dict[str, Any]) -> dict[str, Any]:
        raise failure

    registry = build_registry([synthetic_contract([], first_step=failing_step)])

    with pytest.raises(InvalidContract, match=r"synthetic_lines v1: payload cannot be upcast") as refused:
        registry.decode(wire("synthetic_lines", 1, {"rows": [{"line": "a", "total": "1.00"}]}))

    assert type(failure).__name__ in str(refused.value)
    assert isinstance(refused.value, PermanentError)


def test_an_old_estimate_without_its_amount_is_an_invalid_contract_not_a_crash(registry, wire, estimate_row_v1):
    del estimate_row_v1["amount"]

    with pytest.raises(InvalidContract, match=r"payload\.rows\.0\.amount"):
        registry.decode(wire("create_expense_estimates", 1, batch_of([estimate_row_v1])))


def test_the_raw_estimate_upcaster_cannot_handle_a_malformed_payload(estimate_row_v1):
    """Why the registry must never hand an upcaster an unchecked payload."""
    del estimate_row_v1["amount"]

    with pytest.raises(KeyError):
        estimates_v1_to_v2({"rows": [estimate_row_v1]})


# --- building registries -------------------------------------------------------------------


def test_registering_a_contract_twice_fails():
    registry = ContractRegistry()
    registry.register(synthetic_contract([]))

    with pytest.raises(ValueError, match="'synthetic_lines' is registered twice"):
        registry.register(synthetic_contract([]))


def test_building_a_registry_from_a_list_with_a_repeated_contract_fails():
    with pytest.raises(ValueError, match="registered twice"):
        build_registry([CREATE_EXPENSE_ESTIMATES, CREATE_EXPENSE_ESTIMATES])


@pytest.mark.parametrize("upcaster_count", [0, 1, 3])
def test_a_contract_needs_exactly_one_upcaster_between_each_pair_of_versions(upcaster_count):
    with pytest.raises(ValueError, match="3 versions need 2 upcasters"):
        Contract(
            name="synthetic_lines",
            kind=Kind.COMMAND,
            scope=Scope.GLOBAL,
            versions=(LinesV1, LinesV2, LinesV3),
            upcasters=tuple(estimates_v1_to_v2 for _ in range(upcaster_count)),
        )


def test_a_single_version_contract_takes_no_upcaster():
    with pytest.raises(ValueError, match="1 versions need 0 upcasters"):
        Contract(name="lines", kind=Kind.COMMAND, scope=Scope.GLOBAL, versions=(LinesV1,), upcasters=(estimates_v1_to_v2,))


def test_the_registry_lists_its_contracts_by_name(registry):
    names = [contract.name for contract in registry]

    assert names == sorted(names)
    assert {"create_expense_estimates", "msdyn_expensecategories", "msdyn_transactioncategories"} <= set(names)


def test_validate_payload_checks_the_named_version_for_publishers(registry, estimate_row_v1):
    checked = registry.validate_payload("create_expense_estimates", 1, {"rows": [estimate_row_v1]})

    assert checked.rows[0].amount == Decimal("360.00")
    with pytest.raises(InvalidContract, match=r"create_expense_estimates v2: payload\.rows\.0\.quantity: Field required"):
        registry.validate_payload("create_expense_estimates", 2, {"rows": [estimate_row_v1]})
