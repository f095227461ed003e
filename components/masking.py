"""The pairwise-mask key exchange every arbiter-summed component shares (HomoLR, HomoNN,
HomoFeatureBinning, HomoSecureBoost, HeteroKmeans): each party sends its X25519 key to the
arbiter, the arbiter hands every party the whole list, and each party's
:class:`~components.crypto.secure_agg.SecureAggregator` agrees pairwise masks with the others.
The arbiter only relays keys: it never holds a mask."""

from __future__ import annotations

from components.base import Context
from components.crypto.secure_agg import SecureAggregator
from federation.api import Party
from flow.core.errors import ComponentError


def contributor(party: Party) -> str:
    """A party's name in the key list and in the masks' derivation (``role:party_id``)."""
    return f"{party.role}:{party.party_id}"


def join_masks(ctx: Context) -> SecureAggregator:
    """Party side: send this party's key, take the list back, agree the masks."""
    arbiter = ctx.role_parties("arbiter")
    masker = SecureAggregator(contributor(ctx.local), f"{ctx.job_id}|{ctx.tag()}".encode())
    ctx.federation.remote(masker.public_key, "secure_agg_pubkey", ctx.tag(), arbiter)
    (keys,) = ctx.federation.get("secure_agg_pubkeys", ctx.tag(), arbiter)
    expected = {contributor(q) for q in ctx.role_parties("guest") + ctx.role_parties("host")}
    if not isinstance(keys, dict) or set(keys) != expected:
        raise ComponentError(f"{ctx.component}: the arbiter's key list names "
                             f"{sorted(keys) if isinstance(keys, dict) else type(keys).__name__}, "
                             f"expected {sorted(expected)}")
    masker.agree(keys)
    return masker


def relay_mask_keys(ctx: Context, parties: list[Party]) -> None:
    """Arbiter side: collect each party's key and send every party the whole list."""
    keys = ctx.federation.get("secure_agg_pubkey", ctx.tag(), parties)
    ctx.federation.remote({contributor(q): k for q, k in zip(parties, keys)}, "secure_agg_pubkeys",
                          ctx.tag(), parties)
