"""``flow audit``: read and verify the hash-chained audit logs of this party's home."""

from __future__ import annotations

import click

from flow.cli.main import Env, cli, envelope


@cli.group()
def audit() -> None:
    """Who read which data, who changed what, what crossed party lines."""


_party_opt = click.option("--party", default=None, help="only this party's log (default: every log in the home)")


@audit.command("list")
@click.option("-j", "--job", "job", default=None, help="only entries of this job")
@click.option("--since", default=None, help="only entries at or after this ISO time (e.g. 2026-11-26T02:00Z)")
@click.option("--kind", default=None, help="only this kind or kind prefix (data, federation.sent, ...)")
@_party_opt
@click.option("-l", "--limit", default=None, type=int, help="only the newest N entries")
@click.option("--all", "everything", is_flag=True,
              help="also the per-object federation.sent/received entries (see flow audit summary)")
@click.pass_obj
@envelope
def list_entries(env: Env, job: str | None, since: str | None, kind: str | None, party: str | None,
                 limit: int | None, everything: bool):
    """Entries, oldest first, merged across the home's logs by time. The per-object federation
    traffic is left out unless asked (--all, or --kind federation...): flow audit summary totals it."""
    if everything or kind is not None:
        return env.ops.audit_list(job=job, since=since, kind=kind, party=party, limit=limit)
    entries = [e for e in env.ops.audit_list(job=job, since=since, party=party) if not _traffic(e)]
    return entries[-limit:] if limit else entries


def _traffic(entry: dict) -> bool:
    return str(entry.get("kind", "")).startswith(TRAFFIC + ".")


#: the kinds of the per-object entries transports write (federation.sent, federation.received)
TRAFFIC = "federation"


@audit.command()
@click.option("-j", "--job", "job", default=None, help="only the traffic of this job")
@_party_opt
@click.pass_obj
@envelope
def summary(env: Env, job: str | None, party: str | None):
    """Federation traffic totalled: objects and bytes per party, direction, peer and variable."""
    return env.ops.audit_summary(job=job, party=party)


@audit.command()
@_party_opt
@click.pass_obj
@envelope
def verify(env: Env, party: str | None):
    """Check every chain; exit 1 naming the first bad entry of each broken log."""
    results = env.ops.audit_verify(party=party)
    for r in results:
        if not r["ok"]:
            click.echo(f"audit log of party {r['party']} is broken at seq {r['first_bad_seq']}: {r['reason']}",
                       err=True)
    return results, 0 if all(r["ok"] for r in results) else 1
