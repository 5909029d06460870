"""The govrag code location's definitions, one module per concern."""
