"""Custom search attributes that operators filter runs by in the Temporal UI.

No email or phone number goes here: search attributes are stored unencrypted. With encryption
on, ``JourneyContactId`` holds a keyed hash of the userId (``starter.RunNames``), not the userId.
"""

from __future__ import annotations

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType, SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode

JOURNEY_KEY = SearchAttributeKey.for_keyword("JourneyKey")
JOURNEY_VERSION = SearchAttributeKey.for_int("JourneyVersion")
CONTACT_ID = SearchAttributeKey.for_keyword("JourneyContactId")
STEP = SearchAttributeKey.for_keyword("JourneyStep")
STATUS = SearchAttributeKey.for_keyword("JourneyStatus")

ALL = (JOURNEY_KEY, JOURNEY_VERSION, CONTACT_ID, STEP, STATUS)
_INDEXED = {
    SearchAttributeIndexedValueType.KEYWORD: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    SearchAttributeIndexedValueType.INT: IndexedValueType.INDEXED_VALUE_TYPE_INT,
}


async def register(client: Client, namespace: str) -> None:
    """Add the attributes to a namespace (dev and test servers); existing ones are kept."""
    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        existing = set(listed.custom_attributes)
    except RPCError as err:
        # The time-skipping test server can add attributes but not list them.
        if err.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        existing = set()
    missing = {
        key.name: _INDEXED[key.indexed_value_type] for key in ALL if key.name not in existing
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
