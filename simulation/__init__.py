"""A simulated year of demand and supply, run through the inventory's own domain and planning code on a
simulated clock, with planning and without it (`make simulate`)."""
