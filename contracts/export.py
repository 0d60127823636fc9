"""Writes the JSON Schemas of every command and event to contracts/schemas/ (`python -m contracts.export`)."""

import json
from pathlib import Path

from contracts.commands import INVENTORY_COMMANDS, ORDER_COMMANDS
from contracts.envelope import Envelope
from contracts.events import INVENTORY_EVENTS, NOTIFICATION_EVENTS, ORDER_EVENTS

SCHEMAS = Path(__file__).parent / "schemas"


def schemas() -> dict[str, str]:
    """File name -> schema text, for every public message."""
    models = {"Envelope": Envelope} | ORDER_COMMANDS | INVENTORY_COMMANDS | ORDER_EVENTS | INVENTORY_EVENTS
    models |= NOTIFICATION_EVENTS
    return {
        f"{name}.json": json.dumps(model.model_json_schema(), indent=2, sort_keys=True) + "\n"
        for name, model in sorted(models.items())
    }


def main() -> None:
    SCHEMAS.mkdir(exist_ok=True)
    for stale in SCHEMAS.glob("*.json"):
        stale.unlink()
    for name, text in schemas().items():
        (SCHEMAS / name).write_text(text)
    print(f"wrote {len(schemas())} schemas to {SCHEMAS}")


if __name__ == "__main__":
    main()
