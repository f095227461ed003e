"""How a job addresses a party: its role and its party id."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Party:
    """A party as addressed in a job: its role and its party id (kept as a string)."""

    role: str
    party_id: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "party_id", str(self.party_id))

    def __str__(self) -> str:
        return f"{self.role}:{self.party_id}"
