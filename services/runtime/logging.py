"""One log format for every line a service writes (ours, FastStream's, aiokafka's, uvicorn's): JSON in
production, the same fields readable on a terminal under `make run`. Lines about an order carry its
order_id and correlation_id, so one order can be followed through all three services; no line carries an
e-mail address."""

import logging
import re
import sys

import structlog

# The logger our broker gives FastStream, instead of its own coloured one.
FASTSTREAM = "orderflow.faststream"
# Libraries whose info lines are per message or per connection: warnings and worse are what an operator reads.
NOISY = ("aiokafka", "faststream", FASTSTREAM, "kafka", "uvicorn.access")

# Customers' addresses are personal data, and reach a line by ways no one lists: a mail server's refusal
# quotes the address, a library's error or a traceback shows a value. So every line is written without any.
EMAIL_ADDRESS = re.compile(r"""[^\s@"'<>()\[\],;:\\]+@[^\s@"'<>()\[\],;:\\]+""")


def _without_email_addresses(logger, method: str, line: str) -> str:
    return EMAIL_ADDRESS.sub("[email address]", line)


def configure(service: str, level: str = "info", format: str = "json") -> None:
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer = structlog.dev.ConsoleRenderer() if format == "console" else structlog.processors.JSONRenderer()
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,  # lines from the standard library's loggers get the same fields
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, structlog.processors.format_exc_info,
                    renderer, _without_email_addresses]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in NOISY:
        logger = logging.getLogger(noisy)
        logger.handlers[:] = []  # FastStream gives its own logger a coloured handler of its own at import
        logger.propagate = True
        logger.setLevel(max(logging.WARNING, root.level))
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
