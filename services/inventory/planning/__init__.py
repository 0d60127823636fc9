"""Planning: demand forecasts, learned supplier lead times, safety stock and reorder points, and the
suggestions, overstock and delay findings made from them. Pure functions of history and state, no I/O."""
