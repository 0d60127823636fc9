"""The order aggregate, pure: its state and the one fold (state), placement, line outcomes, cancellation
and shipping (decisions), refunds in the currency's minor unit (money). Decisions read an order and return
events; `state.evolve` applies them."""
