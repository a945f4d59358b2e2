"""safehouse.drivers."""
