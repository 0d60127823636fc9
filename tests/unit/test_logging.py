"""One log format: every line a service writes, whoever writes it, is one JSON object with the same fields."""

import json
import logging

import pytest
import structlog

from services.runtime import logging as logs


@pytest.fixture
def restored_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def test_our_lines_and_the_libraries_lines_are_json_with_the_same_fields(restored_logging, capsys):
    logs.configure("order", "info", "json")
    structlog.get_logger().info("events recorded", order_id="o-1", correlation_id="c-1")
    logging.getLogger(logs.FASTSTREAM).warning("Auto create topics is disabled.")
    logging.getLogger("uvicorn.error").error("port taken")
    logging.getLogger("aiokafka").info("per-connection chatter")  # below warning: not written
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(l["event"], l["level"], l["service"]) for l in lines] == [
        ("events recorded", "info", "order"), ("Auto create topics is disabled.", "warning", "order"),
        ("port taken", "error", "order")]
    assert lines[0]["order_id"] == "o-1" and all("timestamp" in l and "logger" in l for l in lines)


def test_a_terminal_gets_the_same_lines_readable(restored_logging, capsys):
    logs.configure("inventory", "info", "console")
    structlog.get_logger().info("service started", http="http://127.0.0.1:8002")
    out = capsys.readouterr().out
    assert "service started" in out and "http://127.0.0.1:8002" in out and not out.lstrip().startswith("{")


def test_no_line_carries_an_email_address_whoever_writes_it(restored_logging, capsys):
    logs.configure("notification", "info", "json")
    structlog.get_logger().error("notification refused", order_id="o-1",
                                 error="recipient refused: [SMTPRecipientRefused(550, '5.1.1 <ann.lee+eu@example.com>: "
                                       "User unknown', 'ann.lee+eu@example.com')]")
    logging.getLogger("aiokafka").error("bad value %r", {"customer_email": "o'brien@mail.example.co.uk"})
    try:
        raise ValueError("invalid address bob@localhost")
    except ValueError:
        structlog.get_logger().exception("message cannot be handled")
    out = capsys.readouterr().out
    assert "@" not in out and "example" not in out and "localhost" not in out
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0]["error"] == ("recipient refused: [SMTPRecipientRefused(550, '5.1.1 <[email address]>: "
                                 "User unknown', '[email address]')]")
    assert lines[0]["order_id"] == "o-1" and "[email address]" in lines[2]["exception"]
