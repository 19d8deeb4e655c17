"""The events layer: importers (CSV, JSON lines, Parquet, frames), vectorised validation, quarantine."""

from events.importers import KINDS, ImportReport, import_file, import_frame

__all__ = ["KINDS", "ImportReport", "import_file", "import_frame"]
