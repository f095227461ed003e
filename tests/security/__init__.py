"""Security tests: hostile values on every route and every CLI command."""
