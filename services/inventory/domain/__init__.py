"""The SKU aggregate, pure: its state and the one fold (state), allocation, fills, shipping and counts
(allocation), purchase orders and ETAs (supply), product changes (products), what storefronts see
(availability). Decisions read a state and return events; `state.evolve` applies them."""
