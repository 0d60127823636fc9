"""What the three services share: settings, logging, Postgres, the event store with its outbox relay,
the inbox, batch consumption with dead-lettering, and the HTTP basics."""
