"""The local stack: a Kafka broker, PostgreSQL and a mail sink for `make run` and the tests, started
only where the environment gives none."""

import os
from pathlib import Path

# Where the local stack keeps its data (broker jars and logs, embedded database, mails); ignored by git.
STATE = Path(os.environ.get("ORDERFLOW_STATE_DIR", Path(__file__).resolve().parent.parent / ".local"))
