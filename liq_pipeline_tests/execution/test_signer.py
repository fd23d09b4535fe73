"""The operator key: signatures that recover to it, on the right chain id; the key in no text; clear errors."""

from __future__ import annotations

import json
import logging
import pickle
import random
import traceback

import pytest
from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from pydantic import SecretStr

from liq_pipeline.commands.redaction import redactor_for
from liq_pipeline.config import load_settings
from liq_pipeline.execution.signer import Signer, SignerError, load_signer

KEY_HEX = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
KEY = "0x" + KEY_HEX
ADDRESS = Account.from_key(KEY).address
PASSWORD = "correct horse battery staple"
# secp256k1's group order n: a well-formed 32-byte hex value that is not a valid key
INVALID_KEY = "0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141"


def _tx(**extra):
    return {
        "nonce": 7,
        "to": "0x" + "22" * 20,
        "value": 0,
        "data": b"\x01\x02",
        "gas": 300_000,
        "maxFeePerGas": 2 * 10**7,
        "maxPriorityFeePerGas": 10**6,
        **extra,
    }


def _texts_of(error: BaseException) -> str:
    """What a user could see of the error: its lines as printed (chained exceptions too), repr, str."""
    return "".join(traceback.format_exception_only(error)) + repr(error) + str(error) + repr(error.__context__)


def _absent(text: str) -> None:
    for form in (KEY_HEX, KEY_HEX.upper()):
        assert form not in text


@pytest.fixture
def keystore(tmp_path):
    path = tmp_path / "operator.json"
    # pbkdf2 with few iterations: the default scrypt takes seconds per decryption
    path.write_text(json.dumps(Account.encrypt(KEY, PASSWORD, kdf="pbkdf2", iterations=1_000)))
    return path


def test_signature_recovers_to_the_key_and_carries_the_chain_id():
    signer = Signer.from_private_key(SecretStr(KEY), 8453)
    signed = signer.sign(_tx())
    assert signer.address == ADDRESS
    assert Account.recover_transaction(signed.raw) == ADDRESS
    decoded = TypedTransaction.from_bytes(HexBytes(signed.raw)).as_dict()
    assert decoded["chainId"] == 8453 and decoded["nonce"] == 7
    assert signed.raw[0] == 2  # EIP-1559 envelope
    assert signed.hash.startswith("0x") and len(signed.hash) == 66


def test_the_own_encoding_gives_eth_accounts_bytes_on_random_transactions():
    # the signer encodes and signs a plain EIP-1559 transaction itself (10x faster): byte for byte eth-account's
    rng = random.Random("signer")
    signer, reference = Signer.from_private_key(KEY, 8453), Account.from_key(KEY)
    for _ in range(200):
        tx = {
            "nonce": rng.randint(0, 2**40),
            "to": to_checksum_address(rng.randbytes(20)),
            "value": rng.choice((0, rng.randint(1, 10**24))),
            "data": rng.choice(("0x" + rng.randbytes(rng.randint(0, 600)).hex(), rng.randbytes(rng.randint(0, 40)))),
            "gas": rng.randint(21_000, 30_000_000),
            "maxFeePerGas": rng.randint(10**6, 10**13),
            "maxPriorityFeePerGas": rng.randint(0, 10**6),
        }
        ours, theirs = signer.sign(tx), reference.sign_transaction({**tx, "chainId": 8453, "type": 2})
        assert ours.raw == bytes(theirs.raw_transaction)
        assert ours.hash == "0x" + bytes(theirs.hash).hex()
    listed = _tx(to=ADDRESS, accessList=[{"address": ADDRESS, "storageKeys": ["0x" + "00" * 32]}])
    assert signer.sign(listed).raw == bytes(reference.sign_transaction({**listed, "chainId": 8453}).raw_transaction)


def test_a_transaction_for_another_chain_or_type_is_refused():
    signer = Signer.from_private_key(KEY, 8453)
    with pytest.raises(SignerError, match="chain 1 given to a signer for chain 8453"):
        signer.sign(_tx(chainId=1))
    with pytest.raises(SignerError, match="type 2"):
        signer.sign(_tx(type=0))
    with pytest.raises(SignerError, match="lacks nonce"):
        signer.sign({k: v for k, v in _tx().items() if k != "nonce"})
    with pytest.raises(SignerError, match="exceeds"):
        signer.sign(_tx(maxPriorityFeePerGas=10**8))


def test_the_key_is_in_no_text_and_not_picklable():
    signer = Signer.from_private_key(KEY, 8453)
    _absent(repr(signer) + str(signer) + f"{signer}")
    assert ADDRESS in repr(signer)
    with pytest.raises(TypeError, match="not pickled"):
        pickle.dumps(signer)


@pytest.mark.parametrize("bad", [INVALID_KEY, "0x" + "zz" * 32, KEY_HEX[:-2], ""])
def test_a_bad_key_gives_one_clear_error_without_the_value(bad):
    with pytest.raises(SignerError) as caught:
        Signer.from_private_key(SecretStr(bad), 8453)
    text = _texts_of(caught.value)
    assert str(caught.value) == "EXECUTOR_PRIVATE_KEY is not a valid secp256k1 private key (value hidden)"
    assert caught.value.__context__ is None and caught.value.__cause__ is None
    if bad:
        assert bad not in text and bad.removeprefix("0x") not in text


def test_keystore_with_password_and_with_password_file(keystore, tmp_path, clean_env):
    assert Signer.from_keystore(keystore, SecretStr(PASSWORD), 8453).address == ADDRESS
    password_file = tmp_path / "password.txt"
    password_file.write_text(PASSWORD + "\n")
    settings = load_settings(executor_keystore=str(keystore), executor_keystore_password_file=str(password_file))
    assert load_signer(settings, 8453).address == ADDRESS


def test_wrong_keystore_password_is_one_clear_error(keystore):
    with pytest.raises(SignerError) as caught:
        Signer.from_keystore(keystore, SecretStr("hunter2-guess"), 8453)
    message = str(caught.value)
    assert len(message.splitlines()) == 1
    assert message.startswith(f"EXECUTOR_KEYSTORE={str(keystore)!r}: wrong password (EXECUTOR_KEYSTORE_PASSWORD)")
    text = _texts_of(caught.value)
    assert "hunter2-guess" not in text
    _absent(text)
    assert caught.value.__context__ is None


def test_unreadable_keystore_and_missing_pieces(tmp_path, clean_env):
    with pytest.raises(SignerError, match=r"EXECUTOR_KEYSTORE=.*cannot read a keystore JSON file"):
        Signer.from_keystore(tmp_path / "missing.json", PASSWORD, 8453)
    with pytest.raises(SignerError, match="no operator key: set EXECUTOR_PRIVATE_KEY"):
        load_signer(load_settings(), 8453)
    with pytest.raises(SignerError, match="without EXECUTOR_KEYSTORE_PASSWORD"):
        load_signer(load_settings(executor_keystore=str(tmp_path / "k.json")), 8453)
    settings = load_settings(
        executor_keystore=str(tmp_path / "k.json"), executor_keystore_password_file=str(tmp_path / "nope")
    )
    with pytest.raises(SignerError, match=r"EXECUTOR_KEYSTORE_PASSWORD_FILE=.*cannot read it"):
        load_signer(settings, 8453)


def test_load_signer_from_the_private_key_setting(clean_env):
    settings = load_settings(executor_private_key=KEY_HEX)
    signer = load_signer(settings, 31337)
    assert signer.address == ADDRESS and signer.chain_id == 31337
    _absent(repr(settings) + str(settings))


def test_log_redaction_cuts_the_key_and_password(clean_env, caplog):
    settings = load_settings(executor_private_key=KEY, executor_keystore_password=PASSWORD)
    redact = redactor_for(settings)
    line = f"oops {KEY} {KEY_HEX.upper()} {PASSWORD}"
    cleaned = redact(line)
    _absent(cleaned)
    assert PASSWORD not in cleaned
    logging.getLogger("test").warning("%s", cleaned)


def test_signing_uses_libsecp256k1():
    # eth-keys falls back to pure-Python ECDSA when coincurve is missing: 11.9 ms per signature instead of 0.55 ms
    # (measured), most of the executor's send time in a block with a dozen liquidations.
    from eth_keys import KeyAPI
    from eth_keys.backends import CoinCurveECCBackend

    assert isinstance(KeyAPI().backend, CoinCurveECCBackend)
