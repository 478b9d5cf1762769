"""The cross-corpus protocol as executable checks (see checks.py and protocol.toml)."""
