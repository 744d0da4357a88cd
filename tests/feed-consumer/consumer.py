"""An independent consumer of the Plan 63 event feed.

Reads the whole stream through a durable JetStream consumer (nats-py), parses every event of
every commit with the CloudEvents SDK, validates each envelope against the JSON Schema published
for its type (docs/events/schemas), and checks every aggregate's hash chain. Prints a JSON
summary; exits 1 on the first problem. Knows nothing of the Rust code: only the documented feed.
"""

import argparse
import asyncio
import hashlib
import json
import os
import pathlib
import sys

import jsonschema
import nats
from cloudevents.core.formats.json import JSONFormat

BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"


def canonical(value) -> str:
    """Canonical JSON as the producer hashes it: keys sorted, no whitespace, UTF-8 kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(envelope: dict) -> str:
    without_hash = {k: v for k, v in envelope.items() if k != "hash"}
    return hashlib.sha256(canonical(without_hash).encode("utf-8")).hexdigest()


def load_validators(directory: pathlib.Path) -> dict:
    validators = {}
    for path in sorted(directory.glob("*.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        jsonschema.Draft202012Validator.check_schema(schema)
        validators[schema["title"]] = jsonschema.Draft202012Validator(
            schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        )
    return validators


class Problem(Exception):
    pass


def check_event(envelope: dict, sequence: int, validators: dict, heads: dict) -> None:
    # The SDK parses the structured event and checks its required attributes.
    event = JSONFormat().read(None, json.dumps(envelope))
    event_type = event.get_type()
    validator = validators.get(event_type)
    if validator is None:
        raise Problem(f"sequence {sequence}: no published schema for type {event_type}")
    errors = sorted(validator.iter_errors(envelope), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        raise Problem(f"sequence {sequence}: {event_type} invalid at {list(first.path)}: {first.message}")
    aggregate = envelope["subject"]
    if envelope["prevhash"] != heads.get(aggregate, ""):
        raise Problem(f"sequence {sequence}: {aggregate}: broken hash chain")
    if envelope["hash"] != event_hash(envelope):
        raise Problem(f"sequence {sequence}: {aggregate}: hash does not match the envelope")
    heads[aggregate] = envelope["hash"]


async def consume(args) -> dict:
    validators = load_validators(pathlib.Path(args.schemas))
    # A server with the product's accounts admits only clients with a key (NATS_NKEY_FILE).
    login = {"nkeys_seed": args.nkey_file} if args.nkey_file else {}
    nc = await nats.connect(args.nats_url, **login)
    js = nc.jetstream()
    info = await js.stream_info(args.stream)
    last = info.state.last_seq
    subscription = await js.pull_subscribe("", durable=args.durable, stream=args.stream)
    summary = {"commits": 0, "events": 0, "types": {}, "last_sequence": 0}
    heads: dict = {}
    try:
        while summary["last_sequence"] < last:
            messages = await subscription.fetch(500, timeout=5)
            for message in messages:
                sequence = message.metadata.sequence.stream
                content_type = (message.headers or {}).get("Content-Type")
                if content_type != BATCH_CONTENT_TYPE:
                    raise Problem(f"sequence {sequence}: Content-Type {content_type!r}")
                batch = json.loads(message.data)
                if not isinstance(batch, list) or not batch:
                    raise Problem(f"sequence {sequence}: a commit is a non-empty JSON array")
                for envelope in batch:
                    check_event(envelope, sequence, validators, heads)
                    summary["events"] += 1
                    summary["types"][envelope["type"]] = summary["types"].get(envelope["type"], 0) + 1
                summary["commits"] += 1
                summary["last_sequence"] = sequence
                await message.ack()
    finally:
        await nc.close()
    summary["chains"] = len(heads)
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    parser.add_argument("--nkey-file", default=os.environ.get("NATS_NKEY_FILE"),
                        help="nkey seed file to log in with (default: $NATS_NKEY_FILE; none: anonymous)")
    parser.add_argument("--stream", default="PLAN_EVENTS")
    parser.add_argument("--durable", default="feed-consumer")
    parser.add_argument("--schemas", default=str(pathlib.Path(__file__).parents[2] / "docs/events/schemas"))
    args = parser.parse_args()
    try:
        summary = asyncio.run(consume(args))
    except Problem as problem:
        print(json.dumps({"ok": False, "problem": str(problem)}, ensure_ascii=False))
        return 1
    print(json.dumps({"ok": True, **summary}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
