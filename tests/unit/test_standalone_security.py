"""Messages that must never reach a component, in the standalone transport's own terms
(files, folders, processes): pickled payloads, every corruption of a frame, partial
writes, paths. Forged, corrupted and misaddressed messages on every transport, this one
included, are tests/contract/test_federation_security.py."""

from __future__ import annotations

import os
import pickle
import random
import time

import pytest

from federation.api import Party
from federation.auth import KeyStore, PartyKeys
from federation.standalone import StandaloneFederation
from flow.core.errors import CodecError, FederationTimeout
from tests.contract.test_federation_security import reseal

IDS = ["9999", "10000", "10001"]
GUEST, HOST, HOST2 = Party("guest", "9999"), Party("host", "10000"), Party("host", "10001")
JOB = "job_sec"


@pytest.fixture
def fed(tmp_path):
    """guest and host2 endpoints, a host endpoint recording rejections, and the guest's key."""
    seen: list = []
    guest = StandaloneFederation(JOB, GUEST, tmp_path, parties=IDS)
    host = StandaloneFederation(JOB, HOST, tmp_path, parties=IDS, on_reject=seen.append)
    host2 = StandaloneFederation(JOB, HOST2, tmp_path, parties=IDS)
    yield guest, host, host2, seen, KeyStore(tmp_path).load("9999")
    guest.cleanup()


def decoy(guest: StandaloneFederation, sender: StandaloneFederation | None = None) -> tuple[str, bytes]:
    """A genuine single-message frame for 'w'/'iter.1' (channel, data) to tamper with."""
    ((channel, _, data),) = (sender or guest).frames("decoy", "w", "iter.1", HOST)
    return guest.data_channel(GUEST, HOST), data


def _pickled_payload(marker: str) -> bytes:
    class Evil:
        def __reduce__(self):
            return (os.mkdir, (marker,))

    return pickle.dumps(Evil())


def test_pickled_payload_from_a_known_party_is_refused_and_fails_the_wait(fed, tmp_path):
    """Signed by the real sender, so it will never be resent: get() ends at once with the
    reason instead of waiting for its timeout; the pickle is never run."""
    guest, host, _, seen, guest_keys = fed
    marker = tmp_path / "pwned"
    channel, data = decoy(guest)
    guest._publish(channel, "forged-pickle", reseal(data, guest_keys, payload=_pickled_payload(str(marker))))
    with pytest.raises(CodecError, match=r"'w' from guest:9999 could not be decoded: refusing a pickle"):
        host.get("w", "iter.1", [GUEST], timeout=30)
    assert len(seen) == 1 and "pickle" in seen[0].reason
    assert not marker.exists()
    # the message file is gone (the folder keeps only the reader's wake-up FIFO, ".wake")
    assert [p.name for p in (host.root / "guest-9999.host-10000").iterdir()] == [".wake"]


def test_every_corruption_of_a_frame_is_dropped(fed):
    guest, host, _, seen, _ = fed
    channel, data = decoy(guest)
    rng = random.Random(11)
    for k in range(200):
        bad = bytearray(data)
        pos = rng.randrange(len(bad))
        bad[pos] ^= rng.randrange(1, 256)
        guest._publish(channel, f"corrupt-{k}", bytes(bad))
    with pytest.raises(FederationTimeout):
        host.get("w", "iter.1", [GUEST], timeout=0.3)
    assert len(seen) == 200


def test_rejection_names_job_variable_and_claimed_sender(fed):
    guest, host, _, seen, _ = fed
    channel, data = decoy(guest)
    guest._publish(channel, "forged", reseal(data, PartyKeys.generate("9999")))
    with pytest.raises(FederationTimeout):
        host.get("w", "iter.1", [GUEST], timeout=0.1)
    (rej,) = seen
    assert (rej.job_id, rej.name, rej.tag, rej.src) == (JOB, "w", "iter.1", "guest:9999")


def test_aborts_from_an_earlier_attempt_are_ignored(tmp_path):
    guest = StandaloneFederation(JOB, GUEST, tmp_path, parties=IDS)
    guest.abort("attempt 1 failed", [HOST])
    time.sleep(0.01)
    fresh = StandaloneFederation(JOB, HOST, tmp_path, parties=IDS, ignore_aborts_before=time.time())
    with pytest.raises(FederationTimeout):
        fresh.get("w", "0", [GUEST], timeout=0.1)
    guest.cleanup()


def test_partial_writes_are_never_read(fed):
    guest, host, _, seen, _ = fed
    folder = host.root / "guest-9999.host-10000"
    folder.mkdir(parents=True, exist_ok=True)
    _, data = decoy(guest)
    (folder / ".abc.0.123.tmp").write_bytes(data[: len(data) // 2])
    with pytest.raises(FederationTimeout):
        host.get("w", "iter.1", [GUEST], timeout=0.1)
    assert not seen and (folder / ".abc.0.123.tmp").exists()


def test_invalid_ids_cannot_escape_the_job_folder(fed):
    guest, _, _, _, _ = fed
    with pytest.raises(Exception, match="invalid"):
        guest._publish(guest.data_channel(GUEST, HOST), "../../escape", b"x")
    with pytest.raises(Exception, match="invalid job id"):
        StandaloneFederation("../up", GUEST, guest.home, parties=IDS)


def test_without_a_party_list_late_keys_are_read_from_the_store(tmp_path):
    host = StandaloneFederation(JOB, HOST, tmp_path)  # no parties: route table = keys on disk
    assert set(host.route_table.parties) == {"10000"}
    guest = StandaloneFederation(JOB, GUEST, tmp_path)  # creates its key after the host started
    guest.remote("hello", "w", "0", [HOST])
    assert host.get("w", "0", [GUEST], timeout=10) == ["hello"]
    stranger = PartyKeys.generate("6666")
    routes = guest.route_table.with_party("6666", stranger.public_key_b64)
    intruder = StandaloneFederation(JOB, Party("guest", "6666"), tmp_path, keys=stranger,
                                    route_table=routes)  # fmt: skip
    intruder.remote("hi", "w", "1", [HOST])
    with pytest.raises(FederationTimeout):
        host.get("w", "1", [Party("guest", "6666")], timeout=0.2)
    assert "unknown party 6666" in host.rejections[0].reason
    guest.cleanup()
