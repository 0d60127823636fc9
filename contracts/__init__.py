"""Public contract v1: the CloudEvents envelope, commands, events and topics storefronts depend on."""
