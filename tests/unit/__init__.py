"""Pure tests: no process started, no helper from tests.support that launches one. The
whole folder runs in under 30 s (`python3 -m pytest tests/unit -q`)."""
