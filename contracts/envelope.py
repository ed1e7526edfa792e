"""The envelope every message travels in, whatever its contract.

The envelope is a JSON document on its own; it is carried as the single argument of a dramatiq
message (see the README's wire format). Its payload is checked against the contract named in the
envelope only after upcasting, so an envelope validates for every version ever published.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from contracts.wire import Text, Timestamp, Uuid, WholeNumber

#: A company (legal entity, data area) code as finance's set-up holds it: 1 to 8 upper-case letters or digits.
LEGAL_ENTITY_PATTERN = r"^[A-Z0-9]{1,8}$"


def _upper_case_company_code(value: object) -> object:
    """A company code in lower case is refused with the code to send, never upper-cased silently."""
    if isinstance(value, str) and value != value.upper() and value.isascii() and value.isalnum():
        raise PydanticCustomError(
            "company_code_case", "company codes are upper case: send {upper}, not {sent}",
            {"upper": repr(value.upper()), "sent": repr(value)},
        )
    return value


#: A company (legal entity, data area) code, exactly as finance's set-up holds it.
LegalEntity = Annotated[str, StringConstraints(pattern=LEGAL_ENTITY_PATTERN), BeforeValidator(_upper_case_company_code)]

ContractName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{2,63}$")]


class Side(StrEnum):
    """Who published a message."""

    FINANCE = "finance"
    DATAVERSE = "dataverse"
    BRIDGE = "bridge"
    UPSTREAM = "upstream"


class Part(BaseModel):
    """One business document's share of a message that carries several (see ``Envelope.parts``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    message_id: Uuid = Field(description="Idempotency key of this part: applied once, whatever message carries it.")
    correlation_id: Text = Field(min_length=1, max_length=200, description="The business document of these rows.")
    causation_id: Text | None = Field(default=None, max_length=200, description="The part that caused this one.")
    rows: WholeNumber = Field(ge=1, description="How many of the payload's rows, in order, are this part's.")


#: A message carries at most this many parts (a part has at least one row of at most 1,000).
MAX_PARTS = 1000


class Envelope(BaseModel):
    """Identity, routing and provenance of one message; the rows are in ``payload``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    message_id: Uuid = Field(description="Idempotency key: a redelivery has the same id.")
    contract: ContractName = Field(description="Table map entity name or command name.")
    version: WholeNumber = Field(ge=1, description="Contract version the payload was written in.")
    source: Side
    legal_entity: LegalEntity | None = Field(
        default=None, description="Owning company; required by every company-scoped contract."
    )
    correlation_id: Text = Field(
        min_length=1, max_length=200, description="The business document this message is about."
    )
    causation_id: Text | None = Field(
        default=None, max_length=200, description="Message id of the message that caused this one."
    )
    occurred_at: Timestamp
    payload: dict[str, Any] = Field(description="The contract's rows; see contracts/schemas.")
    parts: list[Part] | None = Field(
        default=None,
        min_length=2,
        max_length=MAX_PARTS,
        description=(
            "Present when the message carries the rows of several business documents: each part's "
            "rows follow the previous part's in payload.rows, and each part is applied once by its own "
            "message_id. Absent, the whole message is one part with the envelope's ids."
        ),
    )

    @model_validator(mode="after")
    def _parts_are_distinct(self) -> "Envelope":
        if self.parts is not None:
            ids = [part.message_id for part in self.parts]
            if len(set(ids)) != len(ids):
                raise ValueError("parts: two parts have one message_id")
        return self


def new_envelope(
    *,
    contract: str,
    version: int,
    source: Side,
    payload: dict[str, Any],
    correlation_id: str,
    legal_entity: str | None = None,
    causation_id: str | None = None,
    message_id: uuid.UUID | None = None,
) -> Envelope:
    """An envelope stamped now, with a fresh id unless one is given."""
    return Envelope(
        message_id=message_id or uuid.uuid4(),
        contract=contract,
        version=version,
        source=source,
        legal_entity=legal_entity,
        correlation_id=correlation_id,
        causation_id=causation_id,
        occurred_at=datetime.now(UTC),
        payload=payload,
    )
