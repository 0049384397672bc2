"""datactl: git for datasets and models.

Files are cut into content-defined chunks, stored once in packs, and every
version is an immutable, parent-linked commit that can be restored bit for bit.
"""

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from datactl.api.checks import validate
    from datactl.api.dataset import Dataset, DatasetDraft, log_model
    from datactl.core.errors import DatactlError
    from datactl.validation import ValidationReport
    from datactl.workspace.workspace import Workspace

_LAZY = {"DatactlError": "datactl.core.errors", "Dataset": "datactl.api.dataset", "DatasetDraft": "datactl.api.dataset", "log_model": "datactl.api.dataset", "Workspace": "datactl.workspace.workspace"}
_LAZY.update({"validate": "datactl.api.checks", "ValidationReport": "datactl.validation"})


def __getattr__(name: str) -> Any:
    # Imported on first use, so the command line starts without the training-code API.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'datactl' has no attribute {name!r}")

__all__ = ["Dataset", "DatasetDraft", "DatactlError", "ValidationReport", "Workspace", "log_model", "validate", "__version__"]
