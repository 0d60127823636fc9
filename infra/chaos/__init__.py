"""The chaos harness (`make chaos`): a load, faults and an invariant checker over the whole system."""
