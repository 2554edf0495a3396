"""Foundations every stage uses: errors, atomic writes, the settings-file reader, hashing, messages, the version, machine facts. Imports nothing else of the package."""
