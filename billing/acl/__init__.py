"""Anti-corruption layers: external systems (payments, tax) and other contexts' payloads."""
