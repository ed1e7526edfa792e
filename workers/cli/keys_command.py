"""``dualwrite keys new|trust|revoke|list|init``: the signing keys of the senders (README "Trust").

Every message is signed by its sender's private key and verified with the public keys of
``trusted.json`` in the key folder (``DUALWRITE_KEYS_DIR``, default ``<data dir>/keys``). Workers
re-read ``trusted.json`` within seconds of a change, so keys are added and revoked without a restart.

Rotation: ``keys new --sender finance`` adds a second finance key (both trusted); give the new
private key file to the finance workers (they sign with the newest key they hold); once no message
signed by the old one can still be in flight, ``keys revoke OLD-ID``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from contracts.senders import authorization
from shared.errors import ConfigurationError
from shared.keys import (
    TRUSTED_FILE,
    SigningKey,
    TrustedKey,
    decode_key_bytes,
    check_key_names,
    add_trusted,
    generate_development_ring,
    read_trusted,
    revoke_trusted,
    write_private,
)
from shared.settings import Settings
from workers.cli.exit_codes import ExitCode
from workers.cli.output import fail, print_json, print_table


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser("keys", help="make, trust, revoke and list the senders' signing keys")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    new = actions.add_parser("new", help="make a key pair: the private key file, and its public key trusted")
    new.add_argument("--sender", required=True, help="finance, dataverse, bridge, operator, or an upstream system")
    new.add_argument("--id", dest="key_id", help="the key's id (default: SENDER-YYYYMMDD-random)")
    new.add_argument("--dir", type=Path, help="key folder (default: DUALWRITE_KEYS_DIR, or <data dir>/keys)")
    new.add_argument("--no-trust", action="store_true", help="write the private key only (trust it elsewhere)")
    new.add_argument("--json", action="store_true", help="print JSON")
    new.set_defaults(run=run_new)

    trust = actions.add_parser("trust", help="trust a public key made elsewhere (an upstream system's)")
    trust.add_argument("--sender", required=True)
    trust.add_argument("--id", dest="key_id", required=True)
    trust.add_argument("--public-key", required=True, help="the raw 32-byte Ed25519 public key, base64")
    trust.add_argument("--dir", type=Path)
    trust.add_argument("--json", action="store_true")
    trust.set_defaults(run=run_trust)

    revoke = actions.add_parser("revoke", help="stop trusting a key (kept in the file, marked revoked)")
    revoke.add_argument("key_id")
    revoke.add_argument("--dir", type=Path)
    revoke.add_argument("--json", action="store_true")
    revoke.set_defaults(run=run_revoke)

    listing = actions.add_parser("list", help="the trusted keys, and the private keys this folder holds")
    listing.add_argument("--dir", type=Path)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=run_list)

    init = actions.add_parser("init", help="make a development ring (a key per sender) unless the folder has one")
    init.add_argument("--dir", type=Path)
    init.add_argument("--json", action="store_true")
    init.set_defaults(run=run_init)


def _folder(args: argparse.Namespace, settings: Settings) -> Path:
    return args.dir if args.dir is not None else settings.key_folder


def _known_sender(sender: str) -> None:
    senders = authorization().senders_with_keys
    if sender not in senders:
        raise ConfigurationError(f"unknown sender {sender!r}; senders are {', '.join(senders)} (contracts/senders.yaml)")


def _run(action: str, args: argparse.Namespace, body: Callable[[], int]) -> int:
    try:
        return int(body())
    except ConfigurationError as error:
        fail(f"keys {action}: {error}")
        return ExitCode.USAGE
    except OSError as error:
        fail(f"keys {action}: {error.filename or ''}: {error.strerror or error}")
        return ExitCode.FAILED


def run_new(args: argparse.Namespace, settings: Settings) -> int:
    def body() -> int:
        folder = _folder(args, settings)
        _known_sender(args.sender)
        key = SigningKey.generate(args.sender, args.key_id)
        folder.mkdir(parents=True, exist_ok=True)
        trusted = key.trusted(datetime.now(UTC).isoformat())
        if not args.no_trust:
            add_trusted(folder, trusted)  # first: refuses an id already trusted before a file is written
        path = write_private(folder, key)
        result = {**trusted.as_json(), "private_key_file": str(path), "trusted": not args.no_trust}
        if args.json:
            print_json(result)
        else:
            print(f"made key {key.key_id} for {key.sender}: private key {path} (mode 0600, give it to the {key.sender} only)")
            print(f"public key {result['public_key']}" + ("" if args.no_trust else f", trusted in {folder / TRUSTED_FILE}"))
        return ExitCode.OK

    return _run("new", args, body)


def run_trust(args: argparse.Namespace, settings: Settings) -> int:
    def body() -> int:
        folder = _folder(args, settings)
        check_key_names(args.key_id, args.sender, "keys trust")
        _known_sender(args.sender)
        raw = decode_key_bytes(args.public_key, "--public-key", 32)
        key = TrustedKey(args.key_id, args.sender, Ed25519PublicKey.from_public_bytes(raw), datetime.now(UTC).isoformat())
        add_trusted(folder, key)
        if args.json:
            print_json(key.as_json())
        else:
            print(f"trusted key {key.key_id} of {key.sender} in {folder / TRUSTED_FILE}")
        return ExitCode.OK

    return _run("trust", args, body)


def run_revoke(args: argparse.Namespace, settings: Settings) -> int:
    def body() -> int:
        folder = _folder(args, settings)
        key = revoke_trusted(folder, args.key_id)
        if args.json:
            print_json(key.as_json())
        else:
            print(f"revoked key {key.key_id} of {key.sender} at {key.revoked_at}: its messages are refused from now on")
        return ExitCode.OK

    return _run("revoke", args, body)


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    def body() -> int:
        folder = _folder(args, settings)
        trusted = read_trusted(folder / TRUSTED_FILE)
        private = {path.stem for path in folder.glob("*.key")}
        rows = [{**key.as_json(), "private_key_here": key.key_id in private} for key in trusted]
        if args.json:
            print_json(rows)
        else:
            print_table(
                ["KEY", "SENDER", "CREATED", "REVOKED", "PRIVATE KEY HERE"],
                [[r["id"], r["sender"], r["created_at"], r["revoked_at"] or "", "yes" if r["private_key_here"] else ""] for r in rows],
            )
        return ExitCode.OK

    return _run("list", args, body)


def run_init(args: argparse.Namespace, settings: Settings) -> int:
    def body() -> int:
        folder = _folder(args, settings)
        made = generate_development_ring(folder, authorization().senders_with_keys)
        result = {"folder": str(folder), "made": made, "keys": len(read_trusted(folder / TRUSTED_FILE))}
        if args.json:
            print_json(result)
        elif made:
            print(f"made a development ring in {folder}: a key per sender, all trusted ({result['keys']} keys)")
        else:
            print(f"{folder} has a ring already ({result['keys']} keys); nothing made")
        return ExitCode.OK

    return _run("init", args, body)
