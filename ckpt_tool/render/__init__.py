"""Views of the core's records: Rich for people, JSON for programs. Nothing here reads files."""
