"""
Tests of the transit, PKI, token and lease operations of
`buttress.vault.VaultAdapter` against a real OpenBao dev server.

Each module-scoped fixture enables its engine at a new mount and disables
it afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from _vault_admin import admin, mounted, unique
from buttress import Secret
from buttress.testing import OpenBaoDevServer
from buttress.vault import (
    CertificateRevocation,
    InvalidRequest,
    IssuedCertificate,
    LeaseExpired,
    LeaseNotRenewable,
    NotFound,
    PermissionDenied,
    TokenInfo,
    TransitCiphertext,
    VaultAdapter,
)

pytestmark = pytest.mark.anyio


def adapter(openbao: OpenBaoDevServer, token: str | None = None) -> VaultAdapter:
    return VaultAdapter(
        {
            "url": openbao.address,
            "token": token or openbao.root_token,
            "timeout_seconds": 10.0,
            "retry": {"max_attempts": 3, "initial_backoff_seconds": 0.01},
        }
    )


# -- transit ------------------------------------------------------------------


@pytest.fixture(scope="module")
def transit(openbao: OpenBaoDevServer) -> Iterator[str]:
    """
    A transit mount with the keys ``plain`` and ``derived`` (which needs a
    context).
    """
    with mounted(openbao, "transit") as mount:
        admin(openbao, "POST", f"{mount}/keys/plain", {})
        admin(openbao, "POST", f"{mount}/keys/derived", {"derived": True})
        yield mount


async def test_transit_round_trip(openbao: OpenBaoDevServer, transit: str) -> None:
    async with adapter(openbao) as vault:
        encrypted = await vault.transit.encrypt(
            "plain", b"\x00binary\xff", mount_point=transit
        )
        text = await vault.transit.encrypt("plain", "some text", mount_point=transit)
        plaintext = await vault.transit.decrypt(
            "plain", encrypted.ciphertext, mount_point=transit
        )
        decoded = await vault.transit.decrypt(
            "plain", text.ciphertext, mount_point=transit
        )

    assert isinstance(encrypted, TransitCiphertext)
    assert encrypted.ciphertext.startswith("vault:v1:")
    assert encrypted.key_version == 1
    assert plaintext == b"\x00binary\xff"
    assert decoded == b"some text"


async def test_transit_context_and_associated_data(
    openbao: OpenBaoDevServer, transit: str
) -> None:
    async with adapter(openbao) as vault:
        derived = await vault.transit.encrypt(
            "derived", b"payload", context=b"tenant-1", mount_point=transit
        )
        same_context = await vault.transit.decrypt(
            "derived", derived.ciphertext, context=b"tenant-1", mount_point=transit
        )
        with pytest.raises(InvalidRequest):
            await vault.transit.encrypt("derived", b"payload", mount_point=transit)
        bound = await vault.transit.encrypt(
            "plain", b"payload", associated_data=b"row-7", mount_point=transit
        )
        with pytest.raises(InvalidRequest):
            await vault.transit.decrypt("plain", bound.ciphertext, mount_point=transit)
        unbound = await vault.transit.decrypt(
            "plain", bound.ciphertext, associated_data=b"row-7", mount_point=transit
        )

    assert same_context == b"payload"
    assert unbound == b"payload"


async def test_transit_rewrap_and_key_version(openbao: OpenBaoDevServer) -> None:
    with mounted(openbao, "transit") as mount:
        admin(openbao, "POST", f"{mount}/keys/rotating", {})
        async with adapter(openbao) as vault:
            old = await vault.transit.encrypt("rotating", b"data", mount_point=mount)
            admin(openbao, "POST", f"{mount}/keys/rotating/rotate", {})
            pinned = await vault.transit.encrypt(
                "rotating", b"data", key_version=1, mount_point=mount
            )
            rewrapped = await vault.transit.rewrap(
                "rotating", old.ciphertext, mount_point=mount
            )
            plaintext = await vault.transit.decrypt(
                "rotating", rewrapped.ciphertext, mount_point=mount
            )

    assert old.key_version == 1
    assert pinned.ciphertext.startswith("vault:v1:")
    assert rewrapped.key_version == 2
    assert rewrapped.ciphertext.startswith("vault:v2:")
    assert plaintext == b"data"


async def test_transit_batches(openbao: OpenBaoDevServer, transit: str) -> None:
    plaintexts = [b"first", b"second", b"third"]
    async with adapter(openbao) as vault:
        encrypted = await vault.transit.encrypt_batch(
            "plain", plaintexts, mount_point=transit
        )
        ciphertexts = [item.ciphertext or "" for item in encrypted]
        ciphertexts[1] = "vault:v1:bm90LWEtY2lwaGVydGV4dA=="
        decrypted = await vault.transit.decrypt_batch(
            "plain", ciphertexts, mount_point=transit
        )
        rewrapped = await vault.transit.rewrap_batch(
            "plain", [ciphertexts[0], ciphertexts[2]], mount_point=transit
        )
        derived = await vault.transit.encrypt_batch(
            "derived",
            [b"a", b"b"],
            contexts=[b"tenant-1", b"tenant-2"],
            mount_point=transit,
        )
        swapped = await vault.transit.decrypt_batch(
            "derived",
            [item.ciphertext or "" for item in derived],
            contexts=[b"tenant-1", b"tenant-1"],
            mount_point=transit,
        )

    assert all(item.ok for item in encrypted)
    assert all(item.key_version == 1 for item in encrypted)
    assert decrypted[0].plaintext == b"first"
    assert decrypted[1].ok is False
    assert decrypted[1].plaintext is None
    assert decrypted[1].error is not None
    assert decrypted[2].plaintext == b"third"
    assert all(item.ok for item in rewrapped)
    assert swapped[0].plaintext == b"a"
    assert swapped[1].ok is False
    assert "first" not in repr(decrypted[0])


async def test_transit_batch_length_checked(openbao: OpenBaoDevServer) -> None:
    async with adapter(openbao) as vault:
        with pytest.raises(ValueError, match="has 1 values for 2 items"):
            await vault.transit.encrypt_batch("plain", [b"a", b"b"], contexts=[b"x"])


async def test_transit_key_creation_refused(
    openbao: OpenBaoDevServer, transit: str
) -> None:
    missing = unique("missing-key")
    created = unique("created-key")
    async with adapter(openbao) as vault:
        with pytest.raises(NotFound) as refused:
            await vault.transit.encrypt(
                missing, b"x", create_key=False, mount_point=transit
            )
        with pytest.raises(NotFound):
            await vault.transit.encrypt_batch(
                missing, [b"x"], create_key=False, mount_point=transit
            )
        existing = await vault.transit.encrypt(
            "plain", b"x", create_key=False, mount_point=transit
        )
        await vault.transit.encrypt(created, b"x", mount_point=transit)

    assert "create_key=False" in str(refused.value)
    assert existing.key_version == 1
    with pytest.raises(RuntimeError, match="404"):
        admin(openbao, "GET", f"{transit}/keys/{missing}")
    assert admin(openbao, "GET", f"{transit}/keys/{created}")["data"]["name"] == created


# -- PKI ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(openbao: OpenBaoDevServer) -> Iterator[str]:
    """
    A PKI mount with a root CA for ``example.test`` and two roles: ``web``
    and ``leased``, which attaches a lease to each certificate.
    """
    with mounted(openbao, "pki", config={"max_lease_ttl": "24h"}) as mount:
        admin(
            openbao,
            "POST",
            f"{mount}/root/generate/internal",
            {"common_name": "example.test", "ttl": "24h", "key_type": "ec"},
        )
        role: dict[str, Any] = {
            "allowed_domains": "example.test",
            "allow_subdomains": True,
            "max_ttl": "1h",
            "key_type": "ec",
        }
        admin(openbao, "POST", f"{mount}/roles/web", role)
        admin(
            openbao, "POST", f"{mount}/roles/leased", {**role, "generate_lease": True}
        )
        yield mount


async def test_pki_issue_and_revoke(openbao: OpenBaoDevServer, pki: str) -> None:
    async with adapter(openbao) as vault:
        issued = await vault.pki.issue(
            "web",
            "app.example.test",
            alt_names=["api.example.test"],
            ip_sans=["127.0.0.1"],
            ttl=600,
            mount_point=pki,
        )
        revoked = await vault.pki.revoke(issued.serial_number, mount_point=pki)
        again = await vault.pki.revoke(issued.serial_number, mount_point=pki)

    assert isinstance(issued, IssuedCertificate)
    assert issued.certificate.startswith("-----BEGIN CERTIFICATE-----")
    assert issued.issuing_ca is not None
    assert len(issued.ca_chain) >= 1
    assert isinstance(issued.private_key, Secret)
    assert "PRIVATE KEY" in issued.private_key.get_secret_value()
    assert issued.private_key_type == "ec"
    assert issued.expiration is not None
    assert issued.lease_id is None
    assert issued.private_key.get_secret_value() not in repr(issued)
    assert isinstance(revoked, CertificateRevocation)
    assert revoked.state == "revoked"
    assert revoked.revocation_time is not None
    assert again.revocation_time == revoked.revocation_time


async def test_pki_issue_warnings_and_lease(
    openbao: OpenBaoDevServer, pki: str
) -> None:
    async with adapter(openbao) as vault:
        warned = await vault.pki.issue(
            "web", "w.example.test", extra={"unknown_field": 1}, mount_point=pki
        )
        leased = await vault.pki.issue("leased", "l.example.test", mount_point=pki)
        assert leased.lease_id is not None
        lease = await vault.lease.lookup(leased.lease_id)
        await vault.lease.revoke(leased.lease_id)
        with pytest.raises(LeaseExpired):
            await vault.lease.lookup(leased.lease_id)

    assert any("unknown_field" in warning for warning in warned.warnings)
    assert lease.lease_id == leased.lease_id
    assert lease.ttl > 0
    with pytest.raises(ValueError, match="common_name"):
        await VaultAdapter().pki.issue("web", " ")


# -- the adapter's token ------------------------------------------------------


def child_token(openbao: OpenBaoDevServer, **options: Any) -> str:
    body = {"policies": ["default"], "ttl": "1h", "renewable": True, **options}
    token: str = admin(openbao, "POST", "auth/token/create", body)["auth"][
        "client_token"
    ]
    return token


async def test_token_lookup_renew_revoke(openbao: OpenBaoDevServer) -> None:
    token = child_token(openbao)
    async with adapter(openbao, token) as vault:
        info = await vault.token.lookup_self()
        renewed = await vault.token.renew_self(increment=7200)
        after = await vault.token.lookup_self()
        await vault.token.revoke_self()
        with pytest.raises(PermissionDenied):
            await vault.token.lookup_self()

    assert isinstance(info, TokenInfo)
    assert 3500 < info.ttl <= 3600
    assert info.renewable is True
    assert info.token_type == "service"
    assert "default" in info.policies
    assert info.accessor is not None
    assert renewed.lease_duration == 7200
    assert renewed.accessor == info.accessor
    assert after.ttl > 3600
    assert token not in repr(info)
    assert token not in repr(renewed)


async def test_root_token_never_expires(openbao: OpenBaoDevServer) -> None:
    async with adapter(openbao) as vault:
        info = await vault.token.lookup_self()

    assert info.ttl == 0
    assert "root" in info.policies


async def test_batch_token_not_renewable(openbao: OpenBaoDevServer) -> None:
    token = child_token(openbao, type="batch", renewable=False)
    async with adapter(openbao, token) as vault:
        info = await vault.token.lookup_self()
        with pytest.raises(LeaseNotRenewable) as refused:
            await vault.token.renew_self()

    assert info.token_type == "batch"
    assert refused.value.retryable is False
    assert isinstance(refused.value, InvalidRequest)


# -- leases ---------------------------------------------------------------------


async def test_lease_errors(openbao: OpenBaoDevServer, pki: str) -> None:
    missing = f"{pki}/issue/leased/{uuid.uuid4().hex}"
    async with adapter(openbao) as vault:
        leased = await vault.pki.issue("leased", "r.example.test", mount_point=pki)
        assert leased.lease_id is not None
        # PKI leases end with the certificate and cannot be renewed.
        with pytest.raises(LeaseNotRenewable):
            await vault.lease.renew(leased.lease_id)
        await vault.lease.revoke(leased.lease_id)
        with pytest.raises(LeaseExpired) as expired:
            await vault.lease.renew(missing)
        # Revoking a lease that does not exist succeeds.
        await vault.lease.revoke(missing)

    assert expired.value.status == 400
    assert missing not in str(expired.value)
