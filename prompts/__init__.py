"""The prompt files (*.txt), installed as the package ``chatrec.prompts`` (see pyproject.toml)."""
