"""One file a party can archive: a model version's parts held in this home, as a zip of
JSON files (never pickle) with a manifest of their sha256.

``manifest.json`` lists every other file with its sha256 and a digest over that list;
import checks the layout, every name, every checksum and every JSON document before it
writes anything, so a damaged or edited archive is refused with the file it concerns.
The checksums catch corruption and edits; who made the archive is said by the Ed25519
signatures over the manifest of each exported party whose key the exporting home holds
(the keys that sign its federation messages). Import checks every signature it has a
public key for (route table, or this machine's keys); one that does not verify refuses
the archive, and ``require_signed`` also refuses parts no known key vouches for.
"""

from __future__ import annotations

import base64
import json
import re
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from federation.api import Party
from federation.auth import KeyStore, RouteTable
from flow.core.errors import AuthError, StoreError
from flow.dsl.models import ROLES
from flow.models.format import load_model_text
from flow.models.store import ModelCorrupt, ModelStore, check_name, sha256, write_atomic

FORMAT = "fedweave-model"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
#: an archive unpacks to at most this much (a model is JSON of weights, trees, bins)
MAX_BYTES = 512 * 1024 * 1024
_MEMBER = re.compile(r"^(model\.json|deploy\.json|[a-z]+/[A-Za-z0-9_.-]+/[A-Za-z0-9_#.-]+\.json)$")


def _digest(files: dict[str, str]) -> str:
    return sha256(json.dumps(files, sort_keys=True).encode())


def _signed_bytes(manifest: dict[str, Any]) -> bytes:
    """What a signature covers: the manifest without its signatures (so the files too)."""
    return json.dumps({k: v for k, v in manifest.items() if k != "signatures"}, sort_keys=True).encode()


def export_model(store: ModelStore, model_id: str, model_version: str, out: Path,
                 party: Party | None = None, keys: KeyStore | None = None) -> dict[str, Any]:
    """Write the version's parts this home holds (only ``party``'s when given) to ``out``,
    signed with the key ``keys`` holds for each exported party."""
    store.find(model_id=model_id, model_version=model_version)
    vdir = store.version_dir(model_id, model_version)
    parts = [p for p in store.parts(model_id, model_version) if party is None or p == party]
    if not parts:
        raise StoreError(f"model {model_id} version {model_version} has no part for {party} in this home")
    names = ["model.json"] + (["deploy.json"] if (vdir / "deploy.json").is_file() else [])
    for p in parts:
        info = json.loads((vdir / p.role / p.party_id / "part.json").read_text())
        names += [f"{p.role}/{p.party_id}/part.json"] + [f"{p.role}/{p.party_id}/{c}.json" for c in info["components"]]
    blobs = {n: (vdir / n).read_bytes() for n in names}
    files = {n: sha256(b) for n, b in blobs.items()}
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "model_id": model_id,
                "model_version": model_version, "parties": [str(p) for p in parts],
                "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "files": files, "digest": _digest(files)}
    signers = sorted({p.party_id for p in parts} & set(keys.party_ids() if keys else ()))
    body = _signed_bytes(manifest)
    manifest["signatures"] = {pid: base64.b64encode(keys.load(pid).sign(body)).decode() for pid in signers}
    out = Path(out)
    if out.is_dir():
        raise StoreError(f"{out}: is a directory; give the archive's file name (e.g. {out / 'model.zip'})")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))
            for name, blob in blobs.items():
                zf.writestr(name, blob)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)  # nothing half-written is left, whatever failed
    return {"model_id": model_id, "model_version": model_version, "parties": manifest["parties"],
            "file": str(out), "sha256": sha256(out.read_bytes()), "files": len(files), "signed_by": signers}


def _read_archive(file: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """(manifest, {name: bytes}) after every check; ModelCorrupt naming what is wrong."""
    label = f"model archive {file}"
    try:
        zf = zipfile.ZipFile(file)
    except FileNotFoundError:
        raise StoreError(f"{label}: no such file") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelCorrupt(f"{label}: not a model archive ({exc})") from None
    with zf:
        infos = zf.infolist()
        if sum(i.file_size for i in infos) > MAX_BYTES:
            raise ModelCorrupt(f"{label}: unpacks to more than {MAX_BYTES} bytes")
        names = [i.filename for i in infos]
        if MANIFEST not in names:
            raise ModelCorrupt(f"{label}: no {MANIFEST}; not made by 'flow model export'")
        bad = [n for n in names if n != MANIFEST and (not _MEMBER.match(n) or ".." in n.split("/"))]
        if bad:
            raise ModelCorrupt(f"{label}: unexpected member {bad[0]!r}")
        twice = [n for i, n in enumerate(names) if n in names[:i]]
        if twice:
            raise ModelCorrupt(f"{label}: member {twice[0]!r} is in the archive twice")
        try:
            manifest = json.loads(zf.read(MANIFEST))
            blobs = {n: zf.read(n) for n in names if n != MANIFEST}
        except (ValueError, RuntimeError, NotImplementedError, zipfile.BadZipFile, OSError) as exc:
            # bad JSON, CRC error, truncated data, encrypted or unknown compression
            raise ModelCorrupt(f"{label}: cannot be read ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelCorrupt(f"{label}: {MANIFEST} is not a {FORMAT} manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ModelCorrupt(f"{label}: format version {manifest.get('format_version')!r} is not supported "
                           f"(this fedweave reads {FORMAT_VERSION})")
    files = manifest.get("files")
    if not isinstance(files, dict) or manifest.get("digest") != _digest(files):
        raise ModelCorrupt(f"{label}: {MANIFEST} does not match its digest (the archive was changed after export)")
    if set(files) != set(blobs):
        diff = sorted(set(files) ^ set(blobs))
        raise ModelCorrupt(f"{label}: member {diff[0]!r} is {'missing' if diff[0] in files else 'not in the manifest'}")
    for name, blob in blobs.items():
        if sha256(blob) != files[name]:
            raise ModelCorrupt(f"{label}: {name} does not match its sha256 (the archive was changed after export)")
    return manifest, blobs


def _check_contents(file: Path, manifest: dict[str, Any], blobs: dict[str, bytes]) -> list[Party]:
    label = f"model archive {file}"
    try:
        docs = {n: (load_model_text(b.decode()) if n.count("/") == 2 else json.loads(b)) for n, b in blobs.items()}
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelCorrupt(f"{label}: a member is not JSON ({exc})") from None
    model_id, version = str(manifest.get("model_id")), str(manifest.get("model_version"))
    try:
        check_name(model_id, "model_id"), check_name(version, "model_version")
    except StoreError as exc:
        raise ModelCorrupt(f"{label}: {exc}") from None
    meta = docs.get("model.json")
    if not isinstance(meta, dict) or (meta.get("model_id"), str(meta.get("model_version"))) != (model_id, version):
        raise ModelCorrupt(f"{label}: model.json does not describe model {model_id} version {version}")
    parties = []
    for name, doc in docs.items():
        if not name.endswith("/part.json"):
            continue
        role, pid, _ = name.split("/")
        if role not in ROLES or not isinstance(doc, dict) or (doc.get("role"), str(doc.get("party_id"))) != (role, pid):
            raise ModelCorrupt(f"{label}: {name} does not describe {role}:{pid}")
        for cpn, entry in (doc.get("components") or {}).items():
            member = f"{role}/{pid}/{cpn}.json"
            if member not in blobs or sha256(blobs[member]) != entry.get("sha256"):
                raise ModelCorrupt(f"{label}: {name} lists '{cpn}' but {member} is missing or differs")
        parties.append(Party(role, pid))
    if not parties:
        raise ModelCorrupt(f"{label}: holds no party's model part")
    return parties


def _check_signatures(file: Path, manifest: dict[str, Any], parties: list[Party],
                      known: RouteTable | None, require_signed: bool) -> tuple[list[str], list[str]]:
    """(party ids whose signature verified, party ids that signed with a key not known here)."""
    label = f"model archive {file}"
    sigs = manifest.get("signatures") or {}
    if not isinstance(sigs, dict) or not all(isinstance(v, str) for v in sigs.values()):
        raise ModelCorrupt(f"{label}: {MANIFEST} has malformed signatures")
    verified, unknown = [], []
    for pid, sig in sorted(sigs.items()):
        if known is None or pid not in known.parties or known.parties[pid].public_key is None:
            unknown.append(pid)
            continue
        try:
            known.verify(pid, _signed_bytes(manifest), base64.b64decode(sig, validate=True))
        except (AuthError, ValueError):
            raise ModelCorrupt(f"{label}: the signature of party {pid} does not verify (changed after export, "
                               f"or not made with {pid}'s key)") from None
        verified.append(pid)
    if require_signed:
        unvouched = sorted({p.party_id for p in parties} - set(verified))
        if unvouched:
            raise ModelCorrupt(f"{label}: no signature by a key this home knows for part"
                               f"{'s' if len(unvouched) > 1 else ''} of party {', '.join(unvouched)}")
    return verified, unknown


def import_model(store: ModelStore, file: Path, force: bool = False, known: RouteTable | None = None,
                 require_signed: bool = False) -> dict[str, Any]:
    """Add an exported model to this home; an existing part is replaced only with ``force``.
    ``known``: the public keys signatures are checked against."""
    file = Path(file)
    manifest, blobs = _read_archive(file)
    parties = _check_contents(file, manifest, blobs)
    signed_by, unknown = _check_signatures(file, manifest, parties, known, require_signed)
    model_id, version = manifest["model_id"], str(manifest["model_version"])
    vdir = store.version_dir(model_id, version)
    held = [p for p in parties if (vdir / p.role / p.party_id / "part.json").exists()]
    if held and not force:
        raise StoreError(f"this home already holds model {model_id} version {version} for "
                         f"{', '.join(map(str, held))}; use --force to replace it")
    for name, blob in sorted(blobs.items(), key=lambda kv: kv[0].endswith("part.json")):  # part.json last
        if name.count("/") == 0 and (vdir / name).exists() and not force:
            continue  # model.json / deploy.json of a version already here: keep this home's
        write_atomic(vdir / name, blob.decode())
    return {"model_id": model_id, "model_version": version, "parties": [str(p) for p in parties],
            "file": str(file), "signed_by": signed_by, "signers_not_known_here": unknown}
