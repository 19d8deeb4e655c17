"""The shared contract: schemas, normalisation, settings, workspace and the error root. Depends on nothing in CXI.

Names are re-exported lazily (PEP 562): importing one submodule does not pay for pydantic-settings, DuckDB
and pyarrow at once, which keeps short-lived commands such as `cxi identity link` fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from contract.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "CXIError": "contract.errors",
    "ContractError": "contract.errors",
    "NotFoundError": "contract.errors",
    "WorkspaceError": "contract.errors",
    "EVENTS_SCHEMA": "contract.schemas",
    "IDENTIFIER_TYPES": "contract.schemas",
    "QUARANTINE_SCHEMA": "contract.schemas",
    "RECORDS_SCHEMA": "contract.schemas",
    "Channel": "contract.schemas",
    "ConsentPurpose": "contract.schemas",
    "CustomerRecord": "contract.schemas",
    "Decision": "contract.schemas",
    "Event": "contract.schemas",
    "EventProperties": "contract.schemas",
    "EventType": "contract.schemas",
    "Transaction": "contract.schemas",
    "REPO_ROOT": "contract.settings",
    "Settings": "contract.settings",
    "Workspace": "contract.workspace",
}
__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


if TYPE_CHECKING:
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
