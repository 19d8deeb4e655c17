"""The shared contract: schemas, normalisation, settings, workspace and the error root. Depends on nothing in CXI."""

from contract.errors import ContractError, CXIError, NotFoundError, WorkspaceError
from contract.schemas import (
    EVENTS_SCHEMA,
    IDENTIFIER_TYPES,
    QUARANTINE_SCHEMA,
    RECORDS_SCHEMA,
    Channel,
    ConsentPurpose,
    CustomerRecord,
    Decision,
    Event,
    EventProperties,
    EventType,
    Transaction,
)
from contract.settings import REPO_ROOT, Settings
from contract.workspace import Workspace

__all__ = [
    "EVENTS_SCHEMA",
    "IDENTIFIER_TYPES",
    "QUARANTINE_SCHEMA",
    "RECORDS_SCHEMA",
    "REPO_ROOT",
    "CXIError",
    "Channel",
    "ConsentPurpose",
    "ContractError",
    "CustomerRecord",
    "Decision",
    "Event",
    "EventProperties",
    "EventType",
    "NotFoundError",
    "Settings",
    "Transaction",
    "Workspace",
    "WorkspaceError",
]
