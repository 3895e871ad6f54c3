"""The HTTP layer: authenticate, validate, start workflows, send decisions. No business rules of its own."""
