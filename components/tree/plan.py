"""Which parties' features each tree, and each layer of a tree, may split on.

* ``std``: every party, every layer; with ``complete_secure`` the first rounds are the
  guest's alone (FATE: the hosts get no gradients of the first tree, which the labels
  would otherwise speak through most directly).
* ``mix`` (HeteroFastSecureBoost): whole trees take turns, ``tree_num_per_party`` rounds
  for the guest, then as many for each host in the job's order, then the guest again.
* ``layered`` (HeteroFastSecureBoost): the top ``host_depth`` layers of every tree split on
  the hosts' features, the ``guest_depth`` layers below on the guest's.

A host takes part in a tree (receives its encrypted gradients) only where it may offer
splits somewhere in it; the guest tells each host which trees those are at the start.
"""

from __future__ import annotations

from dataclasses import dataclass

GUEST = "guest"


@dataclass(frozen=True)
class TreePlan:
    hosts: tuple[str, ...]
    tree_dim: int = 1
    mode: str = "std"
    guest_only_rounds: int = 0
    tree_num_per_party: int = 1
    guest_depth: int = 0
    host_depth: int = 0

    def _owner(self, tree: int) -> str | None:
        """The one party a whole tree belongs to, or None where several share it."""
        r = tree // self.tree_dim
        if r < self.guest_only_rounds:
            return GUEST
        if self.mode == "mix":
            turns = (GUEST, *self.hosts)
            return turns[(r // self.tree_num_per_party) % len(turns)]
        return None

    def hosts_of(self, tree: int) -> list[str]:
        """The hosts that take part in this tree."""
        owner = self._owner(tree)
        if owner is None:
            return [] if self.mode == "layered" and self.host_depth == 0 else list(self.hosts)
        return [h for h in self.hosts if h == owner]

    def layer(self, tree: int, depth: int) -> tuple[bool, bool]:
        """(may the guest split here, may the tree's hosts) at this depth of this tree."""
        owner = self._owner(tree)
        if owner is not None:
            return owner == GUEST, owner != GUEST
        if self.mode == "layered":
            return depth >= self.host_depth, depth < self.host_depth
        return True, True

    def trees_of(self, host: str, total: int) -> list[int]:
        """The indices, of ``total`` trees, a host takes part in."""
        return [t for t in range(total) if host in self.hosts_of(t)]
