"""Job/task/metric/output metadata (SQLAlchemy)."""

from .models import FINAL_STATES, STATES
from .store import Store, derive_status

__all__ = ["FINAL_STATES", "STATES", "Store", "derive_status"]
