"""The local stack: a Kafka broker, PostgreSQL and a mail sink for `make run` and the tests, started
only where the environment gives none."""
