"""Miroir's tests: `unit/` (pure, no processes: the fast loop), `integration/` (real
processes on 127.0.0.1), `oracle/` (answers checked against a reference), `support/` (the
helpers and data they share, imported as `tests.support.<module>`)."""
