"""Pure domain rules: no I/O, no clocks, no Temporal. Safe to import from workflows."""
