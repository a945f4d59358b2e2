"""safehouse.services."""
