"""The version API: list trained versions, promote or roll back, archive old ones."""
