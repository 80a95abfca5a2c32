"""Test helpers: servers on loopback, emulators."""
