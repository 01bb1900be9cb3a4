"""Test helpers shared by the test modules (imported as ``support.*``; pytest puts tests/ on sys.path)."""
